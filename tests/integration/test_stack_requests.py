"""Real nginx + real uWSGI + the app, started with ./stack up -d: one request, three JSON lines."""
from __future__ import annotations

import asyncio
import gzip
import json
import re
import uuid

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.reads_stack]

REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,128}")


def lines_for(stack, rid: str) -> dict[str, list[dict]]:
    return {
        "nginx": [r for r in stack.records("nginx") if r["request_id"] == rid],
        "uwsgi": [r for r in stack.records("uwsgi") if r.get("request_id") == rid],
        "app": [r for r in stack.records("app") if r.get("request_id") == rid],
    }


def wait_for_all_layers(stack, rid: str) -> dict[str, list[dict]]:
    # NGINX writes its line after the response is sent: give it a moment.
    def complete():
        found = lines_for(stack, rid)
        return found if found["nginx"] and found["uwsgi"] else None

    return stack.wait_for(complete, what=f"lines of {rid} at every layer")


def test_main_page_carries_the_client_request_id_through_every_layer(stack):
    rid = "itest-" + uuid.uuid4().hex
    resp = stack.request("/pc-builder-app/main", headers={"X-Request-ID": rid})
    assert resp.status == 200
    assert resp.headers["X-Request-ID"] == rid
    assert f'<meta name="request-id" content="{rid}">' in resp.body.decode()

    found = wait_for_all_layers(stack, rid)
    assert len(found["nginx"]) == 1 and len(found["uwsgi"]) == 1
    nginx, uwsgi = found["nginx"][0], found["uwsgi"][0]
    assert nginx["status"] == 200 and nginx["uri"] == "/pc-builder-app/main"
    assert nginx["upstream_addr"].startswith("unix:") and nginx["upstream_status"] == "200"
    assert uwsgi["status"] == 200 and uwsgi["uri"] == "/pc-builder-app/main"
    assert uwsgi["instance"] in ("app1", "app2")
    assert isinstance(uwsgi["start_us"], int) and isinstance(uwsgi["duration_us"], int)
    events = [r["event"] for r in found["app"]]
    assert events == ["request.finished"]  # one wide event per request at INFO
    finished = found["app"][-1]
    assert finished["status"] == 200 and finished["bytes"] == len(resp.body)
    assert finished["instance"] == uwsgi["instance"] and finished["pid"] == uwsgi["pid"]
    assert finished["worker"] == uwsgi["worker"] and finished["route"] == "/pc-builder-app/main"
    # The three layers' clocks agree: NGINX's request window holds uWSGI's, which holds
    # the app's (start_us .. start_us + duration_ms).
    nginx_start = nginx["msec"] - nginx["request_time"]
    assert nginx_start - 0.002 <= uwsgi["start_us"] / 1e6 <= nginx["msec"] + 0.002
    assert uwsgi["start_us"] <= finished["start_us"]
    assert finished["start_us"] + finished["duration_ms"] * 1000 <= uwsgi["start_us"] + uwsgi["duration_us"]


@pytest.mark.parametrize("sent", [None, "short", "has space in it", 'x"}{"forged":1', "a" * 129, "é" * 10])
def test_malformed_or_missing_client_id_is_replaced_at_the_edge(stack, sent):
    headers = {} if sent is None else {"X-Request-ID": sent.encode().decode("latin-1")}
    resp = stack.request("/pc-builder-app/healthz", headers=headers)
    rid = resp.headers["X-Request-ID"]
    assert resp.status == 200
    assert rid != sent and REQUEST_ID.fullmatch(rid)
    found = wait_for_all_layers(stack, rid)
    assert found["app"][-1]["event"] == "request.finished"
    assert not any("forged" in r for layer in found.values() for r in layer)


def test_error_responses_carry_the_request_id(stack):
    rid = "itest-404-" + uuid.uuid4().hex[:8]
    resp = stack.request("/pc-builder-app/no-such-page", headers={"X-Request-ID": rid})
    assert resp.status == 404 and resp.headers["X-Request-ID"] == rid
    api = stack.request("/pc-builder-app/api/builds", method="POST", body=b"{not json",
                        headers={"Content-Type": "application/json", "X-Request-ID": rid + "b"})
    assert api.status == 400 and api.headers["X-Request-ID"] == rid + "b"
    assert b"error" in api.body
    outside = stack.request("/elsewhere", headers={"X-Request-ID": rid + "c"})
    assert outside.status == 404 and outside.headers["X-Request-ID"] == rid + "c"


def test_table_lists_58_components(stack):
    resp = stack.request("/pc-builder-app/table")
    assert resp.status == 200
    assert resp.body.decode().count('class="component-row"') == 58
    rid = resp.headers["X-Request-ID"]
    found = wait_for_all_layers(stack, rid)
    (finished,) = found["app"]
    assert finished["event"] == "request.finished" and finished["components"] == 58
    assert finished["db_queries"] == 1 and finished["db_rows"] == 58
    assert 0 <= finished["db_ms"] <= finished["duration_ms"]


def test_static_assets_come_from_nginx_with_cache_headers_and_never_reach_uwsgi(stack):
    rid = "itest-static-" + uuid.uuid4().hex[:8]
    resp = stack.request("/pc-builder-app/static/css/app.css",
                         headers={"X-Request-ID": rid, "Accept-Encoding": "gzip"})
    assert resp.status == 200
    assert "max-age=" in resp.headers["Cache-Control"]
    assert resp.headers["ETag"]
    assert resp.headers["Content-Encoding"] == "gzip"
    assert b"{" in gzip.decompress(resp.body)
    assert resp.headers["X-Request-ID"] == rid
    again = stack.request("/pc-builder-app/static/css/app.css",
                          headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304
    nginx = stack.wait_for(lambda: lines_for(stack, rid)["nginx"], what="nginx line")
    assert nginx[0]["upstream_addr"] == ""
    assert not any("/static/" in r.get("uri", "") for r in stack.records("uwsgi"))
    assert not any("/static/" in r.get("path", "") for r in stack.records("app"))


async def _get(port: int, rid: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /pc-builder-app/main HTTP/1.1\r\nHost: t\r\nX-Request-ID: {rid}\r\n"
                 "Connection: close\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readline()
    await reader.read()
    writer.close()
    return int(head.split()[1])


def test_1000_concurrent_requests_each_id_once_per_layer(stack):
    ids = [f"burst-{i:04d}-{uuid.uuid4().hex[:12]}" for i in range(1000)]

    async def burst():
        return await asyncio.gather(*(_get(stack.port, rid) for rid in ids))

    statuses = asyncio.run(burst())
    assert statuses == [200] * 1000

    wanted = set(ids)

    def counts():
        nginx = [r["request_id"] for r in stack.records("nginx") if r["request_id"] in wanted]
        uwsgi = [r["request_id"] for r in stack.records("uwsgi") if r.get("request_id") in wanted]
        app = [r["request_id"] for r in stack.records("app")
               if r.get("request_id") in wanted and r["event"] == "request.finished"]
        return nginx, uwsgi, app

    def all_logged():
        found = counts()
        return found if len(found[0]) >= 1000 else None

    nginx, uwsgi, app = stack.wait_for(all_logged, what="1000 nginx lines")
    for layer in (nginx, uwsgi, app):
        assert sorted(layer) == sorted(ids)  # each id exactly once
    # both uWSGI instances served part of the burst (round robin)
    served_by = {r["instance"] for r in stack.records("uwsgi") if r.get("request_id") in wanted}
    assert served_by == {"app1", "app2"}


def test_every_line_in_every_log_file_is_json(stack):
    files = sorted(stack.log_dir.glob("nginx/access.log")) + sorted(stack.log_dir.glob("uwsgi/*.log")) \
        + sorted(stack.log_dir.glob("app/*.log"))
    assert len(files) == 5
    for f in files:
        for number, line in enumerate(f.read_bytes().splitlines(), 1):
            try:
                record = json.loads(line.decode("utf-8"))
            except ValueError as exc:
                pytest.fail(f"{f}:{number} is not JSON ({exc}): {line[:200]!r}")
            assert isinstance(record, dict) and record.get("layer") in ("nginx", "uwsgi", "app")
