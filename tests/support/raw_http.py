"""Raw HTTP over sockets, byte for byte (no HTTP library normalising anything), and the
NGINX limits the requests are sized from (nginx/nginx.conf.template, docs/edge.md "NGINX limits")."""
from __future__ import annotations

import base64
import re
import socket

from tests.support.tools import REPO_ROOT

TEMPLATE = (REPO_ROOT / "nginx" / "nginx.conf.template").read_text()
_buffers = re.search(r"large_client_header_buffers (\d+) (\d+)k;", TEMPLATE)
#: NGINX's largest header line (request line included) and number of such buffers.
LINE, BUFFERS = int(_buffers.group(2)) * 1024, int(_buffers.group(1))
BODY_MAX = int(re.search(r"client_max_body_size (\d+)k;", TEMPLATE).group(1)) * 1024

#: 127.0.0.1, so NGINX's per-address rate limits keep the two apart, as for real clients.
HOSTILE_ADDRESS = "127.0.0.2"


def req(line: bytes, *headers: bytes, body: bytes = b"", host: bool = True) -> bytes:
    """A raw request: the request line, headers, Host and Connection: close, then the body."""
    head = [line, *headers]
    if host:
        head.append(b"Host: localhost")
    head.append(b"Connection: close")
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def get(target: bytes, *headers: bytes, **kw) -> bytes:
    return req(b"GET " + target + b" HTTP/1.1", *headers, **kw)


def post(target: bytes, body: bytes, *headers: bytes, **kw) -> bytes:
    return req(b"POST " + target + b" HTTP/1.1", b"Content-Type: application/json",
               b"Content-Length: %d" % len(body), *headers, body=body, **kw)


def chunked(body: bytes, size: int = 1000) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def basic(user: bytes, password: bytes = b"pw") -> bytes:
    return b"Authorization: Basic " + base64.b64encode(user + b":" + password)


def fill(name: bytes, length: int, unit: bytes = b"x") -> bytes:
    """A header line ``name: ...`` of exactly ``length`` bytes (without CRLF)."""
    prefix = name + b": "
    return prefix + (unit * length)[: length - len(prefix)]


def send_raw(port: int, raw: bytes, source: str = HOSTILE_ADDRESS) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=15, source_address=(source, 0)) as sock:
        sock.sendall(raw)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:  # NGINX may reset after an early answer (413)
                break
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def final_status(response: bytes) -> int:
    """The status of the last response (skipping 100 Continue); 0 for an HTTP/0.9 answer."""
    statuses = re.findall(rb"(?:^|\r\n\r\n)HTTP/1\.[01] (\d{3})", response)
    assert statuses or not response.startswith(b"HTTP/"), response[:300]
    return int(statuses[-1]) if statuses else 0
