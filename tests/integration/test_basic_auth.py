"""HTTP basic authentication at the edge, with a
real NGINX: BASIC_AUTH_FILE names an htpasswd file made with `openssl passwd` (README
"Basic authentication").
"""
from __future__ import annotations

import base64
import json
import socket
import subprocess
import uuid

import pytest

from stackctl import tools
from tests.support.raw_http import final_status, req
from tests.support.env import free_port
from tests.support.stack import STACK, ROOT, start_stack, stop_stack

pytestmark = pytest.mark.integration

PASSWORD = "correct-" + uuid.uuid4().hex  # never a fixed secret in the repository
OTHER_PASSWORD = "other-" + uuid.uuid4().hex


def htpasswd_line(user: str, password: str, scheme: str) -> str:
    """The README's command: openssl passwd, the password on stdin (not in argv)."""
    result = subprocess.run([str(tools.path("openssl")), "passwd", scheme, "-stdin"], input=password,
                            capture_output=True, text=True, check=True)
    return f"{user}:{result.stdout.strip()}\n"


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    base = tmp_path_factory.mktemp("auth")
    users = base / "htpasswd"
    users.write_text("# made by test_basic_auth.py\n" + htpasswd_line("admin", PASSWORD, "-apr1")
                     + htpasswd_line("viewer", OTHER_PASSWORD, "-6"))
    running = start_stack(base, BASIC_AUTH_FILE=str(users))
    try:
        yield running
    finally:
        stop_stack(running)


def credentials(user: bytes, password: bytes) -> bytes:
    return b"Authorization: Basic " + base64.b64encode(user + b":" + password)


def send(stack, raw: bytes, source: str = "127.0.0.1") -> tuple[int, dict, bytes]:
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10, source_address=(source, 0)) as sock:
        sock.sendall(raw)
        response = b"".join(iter(lambda: sock.recv(65536), b""))
    head, _, body = response.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    return final_status(response), headers, body


def get(path: bytes, *headers: bytes) -> bytes:
    return req(b"GET " + path + b" HTTP/1.1", *headers)


def rid() -> bytes:
    return b"auth-" + uuid.uuid4().hex.encode()


def nginx_line(stack, request_id: bytes) -> dict:
    return stack.wait_for(lambda: [r for r in stack.records("nginx") if r["request_id"] == request_id.decode()],
                          what="nginx line")[0]


def test_no_credentials_get_401_with_the_request_id(locked):
    i = rid()
    status, headers, body = send(locked, get(b"/pc-builder-app/main", b"X-Request-ID: " + i))
    assert status == 401 and headers["www-authenticate"] == 'Basic realm="PC builder"'
    assert headers["content-type"].startswith("text/html") and b"<code>" + i + b"</code>" in body
    status, headers, body = send(locked, get(b"/pc-builder-app/api/components", b"X-Request-ID: " + i))
    assert status == 401 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"error": "authentication required", "request_id": i.decode(),
                                "detail": "this site needs a user name and password (HTTP basic authentication)"}
    assert nginx_line(locked, i)["remote_user"] == ""


def test_static_files_need_credentials_too(locked):
    status, _, _ = send(locked, get(b"/pc-builder-app/static/css/app.css"))
    assert status == 401
    status, _, _ = send(locked, get(b"/pc-builder-app/static/css/app.css",
                                    credentials(b"admin", PASSWORD.encode())))
    assert status == 200


def test_a_wrong_password_gets_401_and_is_logged_with_the_user_name(locked):
    i = rid()
    status, _, _ = send(locked, get(b"/pc-builder-app/main", b"X-Request-ID: " + i,
                                    credentials(b"admin", b"wrong-password")))
    assert status == 401
    line = nginx_line(locked, i)
    assert (line["status"], line["remote_user"], line["upstream_addr"]) == (401, "admin", "")


@pytest.mark.parametrize("user,password", [(b"admin", PASSWORD), (b"viewer", OTHER_PASSWORD)],
                         ids=["apr1-hash", "sha512-crypt-hash"])
def test_the_right_password_passes_and_is_logged_without_the_password(locked, user, password):
    i = rid()
    status, _, _ = send(locked, get(b"/pc-builder-app/api/components/1", b"X-Request-ID: " + i,
                                    credentials(user, password.encode())))
    assert status == 200
    assert nginx_line(locked, i)["remote_user"] == user.decode()
    for layer in ("nginx", "uwsgi", "app"):
        assert not [line for line in locked.lines(layer) if password in line or "Basic " in line], layer


def test_a_hostile_user_name_is_logged_as_valid_json(locked):
    # (the first colon ends a basic-auth user name, so none here)
    for user, logged in ((b'q"uote\\back\x00\x01\x1b[31m"}{"forged"=1}', 'q"uote\\back\x00\x01\x1b[31m"}{"forged"=1}'),
                         (b"\xff\xfe\xc0\xaf", "<invalid-utf8>"),
                         ("jos\u00e9-\u65e5\u672c".encode(), "jos\u00e9-\u65e5\u672c")):
        i = rid()
        status, _, _ = send(locked, get(b"/pc-builder-app/main", b"X-Request-ID: " + i,
                                        credentials(user, b"some-password")))
        assert status == 401
        line = nginx_line(locked, i)
        assert line["remote_user"] == logged and "forged" not in line
    raw = (locked.log_dir / "nginx" / "access.log").read_bytes()
    for number, text in enumerate(raw.splitlines(), 1):
        json.loads(text.decode("utf-8", "strict"))  # every line, strictly


def test_the_probes_answer_this_machine_without_credentials_and_others_with(locked):
    for path in (b"/pc-builder-app/healthz", b"/pc-builder-app/readyz"):
        assert send(locked, get(path))[0] == 200
        assert send(locked, get(path), source="127.0.0.2")[0] == 401
        assert send(locked, get(path, credentials(b"admin", PASSWORD.encode())), source="127.0.0.2")[0] == 200


def test_the_browser_beacon_needs_the_pages_credentials(locked):
    beacon = b'{"request_id":"not-a-real-one"}'

    def post(*headers: bytes):
        return send(locked, req(b"POST /pc-builder-app/api/timing HTTP/1.1", b"Content-Type: application/json",
                                b"Content-Length: %d" % len(beacon), *headers, body=beacon))

    status, headers, body = post()
    assert status == 401 and json.loads(body)["request_id"] == headers["x-request-id"]
    status, _, _ = post(credentials(b"admin", PASSWORD.encode()))
    assert status == 400  # reached the app, which rejects the made-up beacon


def test_password_guessing_is_rate_limited_per_address(locked):
    """Every request with credentials counts; over the limit, right or wrong both get 429."""
    guesses = [send(locked, get(b"/pc-builder-app/healthz", credentials(b"admin", b"guess-%d" % n)),
                    source="127.0.0.3")[0] for n in range(120)]
    assert set(guesses) == {401, 429} and guesses[0] == 401
    assert send(locked, get(b"/pc-builder-app/main", credentials(b"admin", PASSWORD.encode())),
                source="127.0.0.3")[0] == 429
    # another address is not affected, and the limited one recovers
    assert send(locked, get(b"/pc-builder-app/main", credentials(b"admin", PASSWORD.encode())),
                source="127.0.0.4")[0] == 200
    locked.wait_for(lambda: send(locked, get(b"/pc-builder-app/main", credentials(b"admin", PASSWORD.encode())),
                                 source="127.0.0.3")[0] == 200, timeout=15, what="the limit to pass")
    logged = [r for r in locked.records("nginx") if r["status"] == 429 and r["remote_user"] == "admin"]
    assert logged and all(r["upstream_addr"] == "" for r in logged)


@pytest.mark.parametrize("content,message", [
    ("admin:plain-text-password\n", "line 1 (user admin) does not hold a salted password hash"),
    ("admin:{PLAIN}secret\n", "line 1 (user admin) does not hold a salted password hash"),
    ("# only a comment\n", "holds no user"),
    ("no-colon-here\n", "line 1 is not user:hash"),
])
def test_an_unusable_htpasswd_file_stops_up_with_one_line(tmp_path, content, message):
    users = tmp_path / "htpasswd"
    users.write_text(content)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BASIC_AUTH_FILE": str(users),
           "RUN_DIR": str(tmp_path / "run"), "LOG_DIR": str(tmp_path / "log"), "DATA_DIR": str(tmp_path / "data"),
           "HTTP_PORT": str(free_port()), "HTTPS_PORT": str(free_port())}
    result = subprocess.run([str(STACK), "up", "-d"], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and str(users) in lines[0], result.stderr
    assert "plain-text-password" not in result.stderr + result.stdout and "secret" not in result.stderr
    assert not (tmp_path / "run" / "supervisord.pid").exists()
