"""NGINX's and uWSGI's limits, derived from each other: uWSGI accepts whatever
NGINX forwards, so no request can make it drop a connection (which NGINX would count as a
failed instance).

The arithmetic is redone here from the rendered nginx.conf (parsed with crossplane, NGINX's
own config parser) and service/uwsgi.ini, so changing one file without the other fails. The
model behind it is then checked against a real NGINX: the largest request it accepts is
sent to a stand-in uWSGI server that measures the uwsgi packet.
"""
from __future__ import annotations

import re
import socket
import struct
import subprocess
import threading
from pathlib import Path

import crossplane
import pytest

from pcbuilder import create_app
from stackctl import render
from stackctl.settings import Settings
from tests.support.env import free_port
from tests.support.tools import REPO_ROOT, require_tool
from tests.support.waiting import wait_until

UWSGI_INI = (REPO_ROOT / "service" / "uwsgi.ini").read_text()
PROTOCOL_MAX = 65535  # the uwsgi packet's size field has 16 bits

#: How long each forwarded value can be. "request line": a part of the request line (the
#: method with the raw URI, and the decoded path with the query, each fit in one line);
#: "header": a header's value (all of them fit in the header block); a number: fixed.
VALUE_BOUNDS = {
    "$request_method": "request line", "$request_uri": "request line",
    "$document_uri": "uri parts", "$query_string": "uri parts",
    "$server_protocol": 8, "$scheme": 5, "$https": 2, "$remote_addr": 45, "$remote_port": 5,
    "$server_port": 5, "$req_id": 128, "$traceparent": 55,
    "$content_type": "header", "$content_length": "header",
}


def size(text: str) -> int:
    match = re.fullmatch(r"(\d+)([km]?)", text)
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2)]


def uwsgi_option(name: str) -> int | None:
    match = re.search(rf"^{re.escape(name)}\s*=\s*(\d+)\s*$", UWSGI_INI, re.M)
    return int(match.group(1)) if match else None


def render_stack_conf(tmp_path: Path) -> tuple[Settings, Path]:
    settings = Settings.from_env({"LOG_DIR": str(tmp_path / "log"), "DATA_DIR": str(tmp_path / "data"),
                                  "RUN_DIR": str(tmp_path / "run")})
    render.write_all(settings)
    return settings, settings.run_dir / "nginx.conf"


def directives(block: list, name: str) -> list[list[str]]:
    return [d["args"] for d in block if d["directive"] == name]


@pytest.fixture
def conf(tmp_path):
    settings, path = render_stack_conf(tmp_path)
    parsed = crossplane.parse(str(path), single=True, check_ctx=False, check_args=False)
    assert parsed["status"] == "ok", parsed["errors"]
    http = next(d["block"] for d in parsed["config"][0]["parsed"] if d["directive"] == "http")
    server = next(d["block"] for d in http if d["directive"] == "server")
    return {"http": http, "server": server, "settings": settings, "path": path}


def limits(conf) -> dict:
    (count, line), = directives(conf["http"], "large_client_header_buffers")
    (first,), = directives(conf["http"], "client_header_buffer_size")
    (body,), = directives(conf["http"], "client_max_body_size")
    line = size(line)
    return {"line": line, "header_block": size(first) + int(count) * line, "body": size(body)}


def packet_bound(conf) -> tuple[int, int]:
    """(number of uwsgi variables, largest uwsgi packet) NGINX can send."""
    lim = limits(conf)
    params = directives(conf["server"], "uwsgi_param")
    server_name = directives(conf["server"], "server_name")[0]
    fixed, kinds = 0, set()
    for key, value, *_ in params:
        bound = VALUE_BOUNDS.get(value, "header" if value.startswith("$http_") else None)
        if value == "$server_name":
            bound = max(len(n) for n in server_name)
        assert bound is not None, f"uwsgi_param {key} {value}: add its bound to VALUE_BOUNDS"
        fixed += 4 + len(key)  # two 16-bit lengths and the key
        if isinstance(bound, int):
            fixed += bound
        else:
            kinds.add(bound)
    # The request line and the headers share the header block; the decoded path and the
    # query repeat at most one more request line.
    variable = lim["header_block"] + (lim["line"] if "uri parts" in kinds else 0)
    return len(params), fixed + variable


def test_only_a_fixed_list_of_variables_reaches_uwsgi(conf):
    assert directives(conf["server"], "uwsgi_pass_request_headers") == [["off"]]
    for location in (d for d in conf["server"] if d["directive"] == "location"):
        block = location["block"]
        if directives(block, "uwsgi_pass"):
            assert not directives(block, "uwsgi_param"), location["args"]
            assert not directives(block, "uwsgi_pass_request_headers"), location["args"]


def test_every_uwsgi_packet_nginx_can_build_fits_uwsgis_buffer(conf):
    count, bound = packet_bound(conf)
    buffer_size, max_vars = uwsgi_option("buffer-size"), uwsgi_option("max-vars")
    assert buffer_size is not None and buffer_size <= PROTOCOL_MAX
    assert bound <= buffer_size, f"NGINX can send a {bound}-byte uwsgi packet, uWSGI reads {buffer_size}"
    assert max_vars is not None and count <= 2 * max_vars  # uWSGI keeps key and value apart


def test_bodies_are_limited_with_413_by_nginx_and_the_app_never_dropped_by_uwsgi(conf, tmp_path):
    body = limits(conf)["body"]
    app = create_app({"TESTING": True, "DATABASE": str(tmp_path / "db.sqlite3"),
                      "APP_LOG_FILE": str(tmp_path / "app.log")})
    assert app.config["MAX_CONTENT_LENGTH"] == body
    assert uwsgi_option("limit-post") is None, "uWSGI drops a body over limit-post without an answer"


def test_nginx_waits_longer_than_uwsgi_lets_a_worker_run(conf):
    (read_timeout,), = directives(conf["server"], "uwsgi_read_timeout")
    assert uwsgi_option("harakiri") < size(read_timeout.rstrip("s"))


def test_no_single_request_can_take_an_instance_out_of_rotation(conf):
    """A request fails at most once per instance; marking one down takes more failures."""
    (upstream,) = [d["block"] for d in conf["http"] if d["directive"] == "upstream"]
    compose = (REPO_ROOT / "docker-compose.yml").read_text()
    lines = [" ".join(args) for args in directives(upstream, "server")]
    lines += re.findall(r'UPSTREAM_SERVERS: "server ([^"]+);"', compose)
    assert len(lines) >= 2
    for line in lines:
        assert int(re.search(r"max_fails=(\d+)", line).group(1)) >= 2, line
    assert directives(conf["server"], "uwsgi_next_upstream") == [["error", "timeout"]]


def test_the_error_details_state_the_configured_limits(conf):
    lim = limits(conf)
    text = conf["path"].read_text()
    assert f"larger than {lim['body'] // 1024} KiB" in text
    assert f"longer than {lim['line'] // 1024} KiB" in text
    assert f"about {(lim['header_block'] - 1024) // 1024} KiB" in text


class FakeUwsgi:
    """Accepts uwsgi requests on a unix socket, records each packet's size and variables."""

    def __init__(self, path: Path):
        self.packets: list[dict] = []
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def _read(self, conn, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                _modifier, length, _ = struct.unpack("<BHB", self._read(conn, 4))
                data, names, i = self._read(conn, length), [], 0
                while i < len(data):
                    key_len = struct.unpack("<H", data[i:i + 2])[0]
                    names.append(data[i + 2:i + 2 + key_len].decode())
                    i += 2 + key_len
                    i += 2 + struct.unpack("<H", data[i:i + 2])[0]
                self.packets.append({"size": length, "names": names})
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nok")

    def close(self):
        self.sock.close()


def test_the_largest_request_nginx_accepts_makes_a_packet_within_the_bound(conf, tmp_path):
    """The model above against a real NGINX: the worst request it takes, measured at uWSGI."""
    nginx = require_tool("nginx")
    settings, path = conf["settings"], conf["path"]
    port = free_port()
    path.write_text(path.read_text()
                    .replace(f"{settings.http_addr}:{settings.http_port};", f"127.0.0.1:{port};")
                    .replace(f"{settings.http_addr}:{settings.https_port} ssl;", f"127.0.0.1:{free_port()} ssl;"))
    subprocess.run(["sh", str(render.TLS_CERT_SCRIPT)], check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "TLS_CERT": str(settings.tls_cert),
                        "TLS_KEY": str(settings.tls_key)})
    fakes = [FakeUwsgi(settings.socket_path(name)) for name in settings.instances]
    proc = subprocess.Popen([nginx, "-p", str(settings.run_dir / "nginx-temp"), "-c", str(path),
                             "-g", "daemon off;"], stderr=subprocess.PIPE)
    try:
        wait_until(lambda: _connects(port), 10, "nginx listening")
        lim, count_bound = limits(conf), packet_bound(conf)
        line, slack = lim["line"], 200
        # One buffer: the request line and the small headers; one each: three long ones.
        small = [b"Accept: a", b"Accept-Language: b", b"Origin: c", b"If-None-Match: d",
                 b"If-Modified-Since: e", b"X-Request-ID: " + b"r" * 128,
                 b"traceparent: 00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01",
                 b"Content-Type: text/plain", b"Host: localhost", b"Connection: close"]
        half = (line - sum(len(h) + 2 for h in small)) // 2 - slack
        target = b"/pc-builder-app/" + b"p" * half + b"?q=" + b"q" * half
        long = [b"%s: %s" % (name, b"v" * (line - len(name) - slack)) for name in
                (b"Cookie", b"User-Agent", b"Referer")]
        raw = b"GET " + target + b" HTTP/1.1\r\n" + b"\r\n".join(small + long) + b"\r\n\r\n"
        answer = _send(port, raw)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        packet = wait_until(lambda: [p for f in fakes for p in f.packets], 5, "a uwsgi packet")[0]
        assert len(packet["names"]) <= count_bound[0]
        assert packet["size"] <= count_bound[1] <= uwsgi_option("buffer-size")
        assert packet["size"] > 3 * line, "the request should have filled several header buffers"
        assert "HTTP_AUTHORIZATION" not in packet["names"] and not any(
            n.startswith("HTTP_X_") and n != "HTTP_X_REQUEST_ID" for n in packet["names"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for fake in fakes:
            fake.close()


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _send(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        return b"".join(iter(lambda: sock.recv(65536), b""))
