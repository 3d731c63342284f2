#!/bin/bash
# fanbench: pushd (io_uring, epoll) and nchan, 1k and 10k subscribers, same run
FB=/work/shared/tools/fanbench/fanbench
BIN=/work/main/.build/release/pushd
for n in 1000 10000; do
  for be in io_uring epoll; do
    $BIN --listen 127.0.0.1:18090 --event-loop $be --workers 1 --log-level warning & P=$!
    for i in $(seq 50); do curl -fs http://127.0.0.1:18090/healthz >/dev/null && break; sleep 0.1; done
    $FB --port 18090 --sub-path '/topics/{topic}' --pub-path '/topics/{topic}' -n $n -m 200 --pub-depth 16 --server-pid $P --label "pushd-$be-$n"
    kill $P; wait $P 2>/dev/null
  done
  /work/shared/tools/fanbench/with_nchan.sh -n $n -m 200 --pub-depth 16 --label "nchan-$n" 2>/dev/null
done
