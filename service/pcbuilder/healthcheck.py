"""Ask a uWSGI server (uwsgi protocol, no HTTP) whether the app is ready.

``python -m pcbuilder.healthcheck [ADDRESS] [PATH]`` exits 0 when PATH answers 200.
ADDRESS is ``host:port`` or a unix socket path (default: ``$UWSGI_SOCKET``), used by
the compose healthcheck and by ``./stack status``.
"""
from __future__ import annotations

import os
import socket
import struct
import sys

DEFAULT_PATH = "/pc-builder-app/readyz"


def _pack(vars_: dict[str, str]) -> bytes:
    body = b"".join(
        struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
        for k, v in ((k.encode(), v.encode()) for k, v in vars_.items())
    )
    return struct.pack("<BHB", 0, len(body), 0) + body


def _connect(address: str, timeout: float) -> socket.socket:
    if "/" in address:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = address
    else:
        host, _, port = address.rpartition(":")
        host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        target = (host, int(port))
    sock.settimeout(timeout)
    sock.connect(target)
    return sock


def check(address: str, path: str = DEFAULT_PATH, timeout: float = 3.0) -> int:
    """Return the HTTP status the app gives for ``path``."""
    request = _pack({
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "REQUEST_URI": path, "QUERY_STRING": "",
        "SERVER_NAME": "healthcheck", "SERVER_PORT": "0", "SERVER_PROTOCOL": "HTTP/1.0",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "healthcheck",
    })
    with _connect(address, timeout) as sock:
        sock.sendall(request)
        head = sock.recv(64)
    # "HTTP/1.0 200 OK\r\n..."
    return int(head.split(b" ", 2)[1])


def main(argv: list[str]) -> int:
    address = argv[1] if len(argv) > 1 else os.environ.get("UWSGI_SOCKET", "127.0.0.1:3031")
    path = argv[2] if len(argv) > 2 else DEFAULT_PATH
    try:
        status = check(address, path)
    except (OSError, ValueError, IndexError) as exc:
        print(f"unhealthy: {address}: {exc}", file=sys.stderr)
        return 1
    print(f"{address} {path} -> {status}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
