"""HTTP/1.1 pipelining: 64 publishes in one write get 64 in-order responses."""
import asyncio

from e2e_util import AsyncSSE, ID_RE, SyncConn, assert_strictly_increasing, id_key, request_bytes

N = 64


def test_64_pipelined_publishes(pushd):
    async def run():
        sub = await AsyncSSE.open(pushd.port, "/topics/pipe")
        try:
            bodies = [f"pipelined {i}".encode() for i in range(N)]
            batch = b"".join(request_bytes("POST", "/topics/pipe", b) for b in bodies)
            with SyncConn(pushd.port) as c:
                c.send(batch)  # one sendall for all 64 requests
                resps = [c.read_response() for _ in range(N)]
                # the connection stays usable afterwards
                c.send(request_bytes("GET", "/healthz"))
                assert c.read_response().status == 200
            ids = []
            for i, r in enumerate(resps):
                assert r.status == 200, (i, r.status, r.body)
                doc = r.json()
                assert doc["topic"] == "pipe", doc
                assert ID_RE.match(doc["id"]), doc
                ids.append(doc["id"])
            assert_strictly_increasing(ids, "pipelined publish ids")
            await sub.wait_events(N, 10)
            await asyncio.sleep(0.2)
            got = [(e.id, e.data) for e in sub.events]
            assert got == list(zip(ids, [b.decode() for b in bodies]))
        finally:
            await sub.close()

    asyncio.run(run())


def test_pipelined_mixed_with_chunked_and_errors(pushd):
    """Framing survives a mix: chunked body, Content-Length body, a 404 and a 400 in the middle."""
    reqs = [
        request_bytes("POST", "/topics/mix", b"first"),
        b"POST /topics/mix HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nsec\r\n3;ext=1\r\nond\r\n0\r\n\r\n",
        request_bytes("GET", "/no/such/route"),
        request_bytes("POST", "/topics/bad%20topic", b"nope"),
        request_bytes("POST", "/topics/mix", b"third"),
    ]
    async def run():
        sub = await AsyncSSE.open(pushd.port, "/topics/mix")
        try:
            with SyncConn(pushd.port) as c:
                c.send(b"".join(reqs))
                rs = [c.read_response() for _ in reqs]
            assert [r.status for r in rs] == [200, 200, 404, 400, 200], [(r.status, r.body) for r in rs]
            ids = [rs[i].json()["id"] for i in (0, 1, 4)]
            assert id_key(ids[0]) < id_key(ids[1]) < id_key(ids[2])
            await sub.wait_events(3, 10)
            await asyncio.sleep(0.2)
            assert [(e.id, e.data) for e in sub.events] == list(zip(ids, ["first", "second", "third"]))
        finally:
            await sub.close()

    asyncio.run(run())
