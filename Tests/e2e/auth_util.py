"""Helpers for test_auth.py / test_cors.py: keys, hand-made JWTs (so hostile shapes such as
`alg: none` and algorithm confusion can be built), a config file, and a blocking SSE reader."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from e2e_util import SSEParser, parse_head

HS_SECRET = "e2e-hmac-secret-0123456789-abcdefghijklmnop"
STATIC_TOKEN = "static-publish-token-0123456789"
AUDIENCE = "pushd-e2e"
ISSUER = "https://issuer.e2e"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Keys:
    """One key of every supported family, public halves written as PEM files under `dir`."""

    def __init__(self, dir: Path) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.ed = ed25519.Ed25519PrivateKey.generate()
        self.paths: dict[str, Path] = {}
        for name, key in (("rsa", self.rsa), ("ec", self.ec), ("ed", self.ed)):
            pem = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            p = dir / f"{name}.pub.pem"
            p.write_bytes(pem)
            self.paths[name] = p

    def pem(self, name: str) -> bytes:
        return self.paths[name].read_bytes()


def jwt(alg: str, claims: dict, keys: Keys | None = None, secret: bytes | str = HS_SECRET,
        header: dict | None = None) -> str:
    """A compact JWS. `alg` names the header's alg and how to sign: HS*, RS256, ES256, EdDSA, or
    `none` (empty signature)."""
    h = {"alg": alg, "typ": "JWT"}
    h.update(header or {})
    signing_input = (b64(json.dumps(h, separators=(",", ":")).encode()) + "."
                     + b64(json.dumps(claims, separators=(",", ":")).encode())).encode()
    if isinstance(secret, str):
        secret = secret.encode()
    if alg.startswith("HS"):
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        sig = hmac.new(secret, signing_input, digest).digest()
    elif alg == "RS256":
        sig = keys.rsa.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "ES256":
        r, s = decode_dss_signature(keys.ec.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    elif alg == "EdDSA":
        sig = keys.ed.sign(signing_input)
    elif alg == "none":
        sig = b""
    else:
        raise ValueError(alg)
    return signing_input.decode() + "." + b64(sig)


def claims(publish=None, subscribe=None, ttl: float = 300, **extra) -> dict:
    now = time.time()
    c = {"iss": ISSUER, "aud": AUDIENCE, "iat": int(now), "exp": int(now + ttl), "sub": "e2e"}
    p = {}
    if publish is not None:
        p["publish"] = publish
    if subscribe is not None:
        p["subscribe"] = subscribe
    c["pushd"] = p
    c.update(extra)
    return c


def write_config(dir: Path, keys: Keys, extra: str = "") -> Path:
    text = f"""
log:
  access: true
auth:
  publish:
    tokens: ["{STATIC_TOKEN}"]
  jwt:
    secrets: ["{HS_SECRET}"]
    public_keys: ["{keys.paths['rsa']}", "{keys.paths['ec']}", "{keys.paths['ed']}"]
    audience: "{AUDIENCE}"
    issuer: "{ISSUER}"
    leeway: 0s
  private_topics: ["private/*", "secret"]
{extra}"""
    p = dir / "pushd-auth.yaml"
    p.write_text(text)
    return p


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class SSEStream:
    """A blocking SSE subscription over a raw socket."""

    def __init__(self, port: int, path: str, headers: dict[str, str] | None = None,
                 timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        hdrs = {"Host": "127.0.0.1", "Accept": "text/event-stream", **(headers or {})}
        req = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        self.sock.sendall(req.encode("latin-1"))
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"closed before the head: {buf!r}")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        self.status, _, self.headers = parse_head(head)
        self.body_start = rest
        self.parser = SSEParser()
        self.pending = self.parser.feed(rest) if self.status == 200 else []
        self.eof = False

    def events(self, count: int | None = None, until_data: str | None = None,
               timeout: float = 10.0) -> list:
        """Reads until `count` events, an event with data `until_data`, EOF or the timeout."""
        out = list(self.pending)
        self.pending = []
        end = time.monotonic() + timeout

        def done() -> bool:
            if count is not None and len(out) >= count:
                return True
            return until_data is not None and any(e.data == until_data for e in out)

        while not done() and not self.eof and time.monotonic() < end:
            self.sock.settimeout(max(0.05, end - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
                break
            out += self.parser.feed(chunk)
        return out

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_expecting_exit(argv: list[str], env: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, str]:
    """Runs pushd expecting it to exit (a configuration error): (exit code, output)."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHD_")}
    child_env.update(env or {})
    p = subprocess.run(argv, env=child_env, capture_output=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")
