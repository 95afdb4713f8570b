"""Step derivation of ``./stack trace`` from recorded log lines (no stack needed), and the
command on log files and on a stand-in for Loki's query API.

The lines (tests/support/recorded_trace.py) were recorded from a real ``./stack up -d``
with Chromium; each test edits a copy.
"""
from __future__ import annotations

import json
import os
import random
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from stackctl import cli, trace
from stackctl.trace import derivation, lines as request_lines, sources, table, waterfall
from tests.support.env import free_port
from tests.support.recorded_trace import APP, BROWSER, NGINX, OTHER, RID, UWSGI, recorded, recorded_at_info


def by_number(result):
    return {s["number"]: s for s in result["steps"]}


def hop(result, prefix):
    return next(h for h in result["hops"] if h["name"].startswith(prefix))


def test_all_twelve_steps_from_a_real_request():
    result = trace.derive(recorded(), RID)
    steps = by_number(result)
    assert list(steps) == list(range(1, 13)) and result["missing"] == []
    assert result["records"] == 7  # the other request's line is not used
    # Sources: clock readings are measured, computed times are derived.
    assert {n for n, s in steps.items() if s["source"] == "measured"} == {1, 4, 5, 7, 11, 12}
    assert {n for n, s in steps.items() if s["source"] == "derived"} == {2, 3, 6, 8, 9, 10}
    assert steps[2]["time"] == pytest.approx(1795558533.341 - 0.075)
    assert steps[4]["time"] == pytest.approx(1795558533.267115)
    # uWSGI logged its end 1.086 ms after NGINX's msec (see the next test): step 9 is
    # bounded by NGINX's upstream-done time, never before Flask's end.
    assert steps[9]["time"] == pytest.approx(max(steps[10]["time"], steps[8]["time"]))
    assert steps[9]["uwsgi_logged_end"] == pytest.approx(1795558533.267115 + 0.074971)
    assert steps[10]["time"] == pytest.approx(steps[2]["time"] + 0.075)
    assert steps[3]["upstream"] == "app1" and steps[3]["retry"] is False
    assert steps[6]["db_queries"] == 1 and steps[6]["db_ms"] == 5.23
    assert steps[1]["offset_ms"] == 0.0
    assert steps[11]["offset_ms"] == pytest.approx((1795558533.341 - 1795558533.2634) * 1000, abs=0.01)
    assert result["order"]["consistent"] and result["order"]["chain"] == [1, 2, 4, 5, 7, 9, 11, 12]
    assert result["browser_skew_ms"] == 0.0  # same host: the browser's times already bracket NGINX's
    assert result["summary"]["upstream"] == "app1" and result["summary"]["status"] == 200


T2 = 1795558533.341 - 0.075  # NGINX received: msec - request_time
#: Each step alone, from the INFO lines: the steps it reads (given as they are), its time,
#: source and the start of its detail.
PER_STEP = [
    (2, {}, T2, "derived", "msec - request_time (GET /pc-builder-app/table from 127.0.0.1)"),
    (11, {}, 1795558533.341, "measured", "msec; status 200, 3960 bytes sent, request_time 0.075s"),
    (3, {2: T2}, T2 + 0.0, "derived", "app1 (unix:/tmp/trdev/run/app1.sock); connected at step 2 + "
     "upstream_connect_time 0.0s"),
    (10, {2: T2}, T2 + 0.075, "derived", "step 2 + upstream_response_time (0.075s)"),
    (4, {}, 1795558533.267115, "measured", "start_us on app1 (pid 695, worker 2)"),
    (5, {}, 1795558533.267626, "measured", "start_us of request.finished on app1"),
    (6, {5: 1795558533.267626}, 1795558533.269714, "measured",
     "1 query, 5.230 ms in the database, 58 rows, 58 components (db_start_us of request.finished)"),
    (7, {}, 1795558533.341316, "measured", "request.finished: status 200, 17526 bytes, duration_ms 73.73"),
    (8, {7: 1795558533.341316}, 1795558533.341316, "derived", "end of the WSGI call = step 7"),
    # uWSGI's logged end (start_us + duration_us) is 1.086 ms after NGINX's msec: bounded by step 10
    (9, {8: 1795558533.341316, 10: T2 + 0.075, 11: 1795558533.341}, 1795558533.341316, "derived",
     "bounded by step 10 (not before step 8)"),
    (1, {2: T2, 11: 1795558533.341}, 1795558533.2634, "measured",
     "requestStart (Navigation Timing); browser clock used as is"),
    (12, {1: 1795558533.2634, 2: T2, 11: 1795558533.341}, 1795558533.3461, "measured",
     "responseEnd (Navigation Timing); rendered: first byte 79.1 ms after send, DOMContentLoaded +29.9 ms, "
     "load +49.9 ms"),
]


@pytest.mark.parametrize("number, given, time, source, detail", PER_STEP, ids=[f"step {p[0]}" for p in PER_STEP])
def test_each_step_on_its_own(number, given, time, source, detail):
    req = request_lines.pick(recorded_at_info(), RID)
    step = derivation.FUNCTIONS[number](req, {n: {"time": t} for n, t in given.items()})
    assert step["number"] == number and step["source"] == source
    assert step["time"] == pytest.approx(time, abs=1e-6)
    assert step["detail"].startswith(detail), step["detail"]


def test_each_step_without_its_lines_is_missing():
    req = request_lines.pick([], RID)
    for number, given, *_ in PER_STEP:
        step = derivation.FUNCTIONS[number](req, {n: {"time": t} for n, t in given.items()})
        assert step["time"] is None and step["source"] == "missing" and step["detail"].startswith("no "), step


def test_hops_partition_the_nginx_request_time():
    result = trace.derive(recorded(), RID)
    names = ["NGINX edge", "connect", "uWSGI outside", "Flask", "back to the client"]
    parts = [hop(result, n)["ms"] for n in names]
    assert all(p >= 0 for p in parts)
    assert sum(parts) == pytest.approx(75.0, abs=1.0)  # within NGINX's 1 ms resolution
    assert hop(result, "Flask")["ms"] == 73.73 and hop(result, "Flask")["source"] == "measured"
    assert hop(result, "  of which database")["ms"] == 5.23
    assert hop(result, "connect")["source"] == "measured"


def test_order_of_lines_does_not_matter():
    expected = trace.derive(recorded(), RID)
    for seed in range(5):
        lines = recorded()
        random.Random(seed).shuffle(lines)
        assert trace.derive(lines, RID) == expected


@pytest.mark.parametrize("drop, missing", [
    ("uwsgi", [4, 9]),
    ("app", [5, 7, 8]),
    ("browser", [1, 12]),
    ("nginx", [2, 3, 10, 11]),
])
def test_missing_lines_are_shown_missing_not_invented(drop, missing):
    lines = [r for r in recorded() if r["layer"] != drop]
    result = trace.derive(lines, RID)
    steps = by_number(result)
    assert list(steps) == list(range(1, 13))  # still twelve rows
    for n in missing:
        assert steps[n]["time"] is None and steps[n]["source"] == "missing"
        assert steps[n]["offset_ms"] is None
    assert set(missing) <= set(result["missing"])
    assert "MISSING" in table.render(result) and "MISSING" in waterfall.render(result)


def test_a_missing_finished_line_keeps_the_rest():
    lines = [r for r in recorded() if r.get("event") != "request.finished"]
    result = trace.derive(lines, RID)
    steps = by_number(result)
    assert steps[7]["time"] is None and steps[8]["time"] is None
    assert steps[5]["time"] is not None and steps[9]["time"] is not None
    assert hop(result, "Flask")["ms"] is None and hop(result, "Flask")["source"] == "missing"


def test_retry_is_shown_with_every_attempt():
    lines = recorded()
    lines[0].update(upstream_addr="unix:/run/app2.sock, unix:/run/app1.sock", upstream_status="502, 200",
                    upstream_connect_time="-, 0.000", upstream_header_time="-, 0.074",
                    upstream_response_time="0.001, 0.074")
    result = trace.derive(lines, RID)
    step3 = by_number(result)[3]
    assert step3["retry"] is True and step3["upstream"] == "app1"
    assert [a["instance"] for a in step3["attempts"]] == ["app2", "app1"]
    assert step3["attempts"][0]["status"] == "502" and step3["attempts"][0]["connect_s"] is None
    assert "RETRY" in step3["detail"] and "app2" in step3["detail"]
    # connected to the second server after the first attempt's time
    assert step3["time"] == pytest.approx(by_number(result)[2]["time"] + 0.001)
    assert by_number(result)[10]["time"] == pytest.approx(by_number(result)[2]["time"] + 0.075)
    assert result["summary"]["retry"] is True
    assert any("retried" in n for n in result["notes"])
    assert "(after a RETRY)" in table.render(result) and "(after a RETRY)" in waterfall.render(result)


def test_a_502_without_connection_keeps_step_10_and_prints_no_none():
    """Both instances down (recorded: NGINX tries app2, then the group has no live server):
    connect times are "-", response times numbers; step 3 is missing, step 10 is shown,
    and no detail prints Python's None ("upstream_connect_time Nones")."""
    nginx = {**NGINX, "status": 502, "request_time": 0.0, "bytes_sent": 826,
             "upstream_addr": "unix:/run/app2.sock, pcbuilder_app", "upstream_status": "502, 502",
             "upstream_connect_time": "-, -", "upstream_header_time": "-, -",
             "upstream_response_time": "0.000, 0.000"}
    result = trace.derive([nginx], RID)
    steps = by_number(result)
    assert steps[3]["time"] is None and "no connection made (upstream_connect_time -)" in steps[3]["detail"]
    assert "connect - (no connection)" in steps[3]["detail"]
    assert steps[10]["time"] == pytest.approx(steps[2]["time"])
    for text in (table.render(result), waterfall.render(result)):
        assert "None" not in text, text


def test_retry_picks_the_uwsgi_line_of_the_server_that_answered():
    lines = recorded()
    lines[0].update(upstream_addr="unix:/run/app2.sock, unix:/run/app1.sock", upstream_status="504, 200",
                    upstream_connect_time="0.000, 0.000", upstream_response_time="0.010, 0.065")
    late = {**UWSGI, "instance": "app2", "pid": 700, "start_us": UWSGI["start_us"] - 9000, "status": 200}
    result = trace.derive(lines + [late], RID)
    assert by_number(result)[4]["instance"] == "app1"
    assert any("also logged" in n for n in result["notes"])


def test_static_request_has_steps_1_to_3_and_11_12_only():
    static = {**NGINX, "uri": "/pc-builder-app/static/css/app.css", "request_time": 0.0,
              "upstream_addr": "", "upstream_status": "", "upstream_connect_time": "",
              "upstream_header_time": "", "upstream_response_time": ""}
    result = trace.derive([static], RID)
    steps = by_number(result)
    assert list(steps) == [1, 2, 3, 11, 12]
    assert steps[3]["upstream"] is None and "static" in steps[3]["detail"]
    assert steps[2]["time"] == steps[11]["time"] == 1795558533.341
    assert result["summary"]["static"] is True
    assert [h["name"] for h in result["hops"]] == ["NGINX serving the static file"]


def test_skewed_browser_clock_is_aligned_on_nginx_and_the_skew_shown():
    lines = recorded()
    lines[-2]["timeOrigin"] += 2500.0  # the browser's clock runs 2.5 s ahead
    result = trace.derive(lines, RID)
    steps = by_number(result)
    # NTP-style: the browser window (82.7 ms) is centred on NGINX's (75 ms); the recorded
    # request took 2.6 ms there and 5.1 ms back, so the estimate is off by half the difference.
    assert result["browser_skew_ms"] == pytest.approx(2500.0 + (5.1 - 2.6) / 2, abs=0.01)
    assert steps[1]["time"] <= steps[2]["time"] and steps[12]["time"] >= steps[11]["time"]
    assert steps[12]["time"] - steps[1]["time"] == pytest.approx(0.0827, abs=1e-6)  # durations kept
    assert result["order"]["consistent"]
    assert "shifted" in steps[1]["detail"]
    assert "skew: +2501.250 ms" in table.render(result) and "skew: +2501.250 ms" in waterfall.render(result)


def test_browser_clock_behind_is_aligned_too():
    lines = recorded()
    lines[-2]["timeOrigin"] -= 60_000.0
    result = trace.derive(lines, RID)
    steps = by_number(result)
    assert result["browser_skew_ms"] == pytest.approx(-60_000 + 1.25, abs=0.01)
    assert steps[1]["time"] <= steps[2]["time"] <= steps[11]["time"] <= steps[12]["time"]


def test_uwsgi_end_before_nginx_end_is_used_as_is():
    lines = recorded()
    lines[0].update(msec=NGINX["msec"] + 0.002, request_time=0.077, upstream_response_time="0.077")
    result = trace.derive(lines, RID)
    step9 = by_number(result)[9]
    assert step9["time"] == pytest.approx(1795558533.267115 + 0.074971)
    assert "uwsgi_logged_end" not in step9 and step9["detail"].startswith("start_us + duration_us")
    assert result["order"]["consistent"]
    assert not [h for h in result["hops"] if "post-response" in h["name"]]


def test_uwsgi_end_after_nginx_end_is_bounded_and_explained():
    # With busy threads uWSGI takes its end time after closing the iterator (GIL), after
    # NGINX already sent the response: the logged end is kept, step 9 is bounded.
    lines = recorded()
    lines[1]["duration_us"] = 80000  # ends 6 ms after NGINX's msec
    result = trace.derive(lines, RID)
    steps = by_number(result)
    assert steps[9]["uwsgi_logged_end"] == pytest.approx(1795558533.347115)
    assert steps[7]["time"] <= steps[9]["time"] <= steps[11]["time"] + 0.001
    assert result["order"]["consistent"]
    assert hop(result, "uWSGI post-response")["ms"] == pytest.approx(5.799, abs=0.01)
    assert hop(result, "back to the client")["ms"] == 0.0


def test_inconsistent_order_is_reported_not_hidden():
    lines = recorded()
    lines[2]["time"] = "2026-11-24T22:15:33.100000+00:00"  # request.started before NGINX got it
    result = trace.derive(lines, RID)
    assert not result["order"]["consistent"]
    assert "INCONSISTENT" in table.render(result) and "INCONSISTENT" in waterfall.render(result)


def test_several_nginx_lines_with_one_id_are_noted():
    lines = recorded() + [{**NGINX, "msec": NGINX["msec"] + 5}]
    result = trace.derive(lines, RID)
    assert by_number(result)[11]["time"] == NGINX["msec"]
    assert any("reused" in n for n in result["notes"])


def test_garbage_values_do_not_crash():
    lines = recorded()
    lines[0].update(request_time="x", upstream_connect_time="garbage", upstream_response_time=None)
    lines[1]["duration_us"] = "?"
    lines[-2]["responseEnd"] = float("nan")
    result = trace.derive(lines + ["not a dict", {"request_id": RID}], RID)
    steps = by_number(result)
    assert steps[2]["time"] is None and steps[9]["time"] is None and steps[12]["time"] is None
    json.dumps(result)


def test_nginx_lists_with_retries_and_redirects():
    assert request_lines.nginx_list("unix:/a.sock, unix:/b.sock : 127.0.0.1:3031") == [
        "unix:/a.sock", "unix:/b.sock", "127.0.0.1:3031"]
    assert request_lines.nginx_list("") == [] and request_lines.nginx_list("[::1]:80") == ["[::1]:80"]


def test_last_request_skips_the_beacon_health_probes_and_static_files():
    lines = recorded() + [
        {**NGINX, "request_id": "beacon-0000001", "uri": "/pc-builder-app/api/timing", "msec": 1795558599.0},
        {**NGINX, "request_id": "ready-00000001", "uri": "/pc-builder-app/readyz", "msec": 1795558599.5},
        {**NGINX, "request_id": "healthy-000001", "uri": "/pc-builder-app/healthz?x=1", "msec": 1795558599.6},
        {**NGINX, "request_id": "static-0000001", "uri": "/pc-builder-app/static/js/app.js", "msec": 1795558599.7},
        {**NGINX, "request_id": "outside-000001", "uri": "/favicon.ico", "msec": 1795558599.8},
    ]
    assert [r["request_id"] for r in sources.recent_requests(lines, 1)] == ["someone-else-0001"]
    api = {**NGINX, "request_id": "api-000000001", "uri": "/pc-builder-app/api/builds", "method": "POST",
           "msec": 1795558599.9}
    assert [r["request_id"] for r in sources.recent_requests(lines + [api], 5)] == [
        RID, "someone-else-0001", "api-000000001"]


# --- the command: files and Loki --------------------------------------------------------

@pytest.fixture
def log_dir(tmp_path, monkeypatch):
    for layer in ("nginx", "uwsgi", "app", "browser"):
        (tmp_path / layer).mkdir()
    (tmp_path / "nginx" / "access.log").write_text(json.dumps(NGINX) + "\n" + json.dumps(OTHER) + "\n")
    (tmp_path / "uwsgi" / "app1.log").write_text(json.dumps(UWSGI) + "\n")
    (tmp_path / "app" / "app1.log").write_text("".join(json.dumps(r) + "\n" for r in APP))
    (tmp_path / "browser" / "app2.log").write_text(json.dumps(BROWSER) + "\nnot json\n")
    monkeypatch.setenv("LOG_DIR", str(tmp_path))
    monkeypatch.delenv("LOKI_URL", raising=False)
    monkeypatch.setenv("LOKI_BIN", "off")  # no Loki of the stack's own either: the files
    return tmp_path


@pytest.fixture(autouse=True)
def no_running_stack(tmp_path_factory, monkeypatch):
    """A RUN_DIR with no stack in it: the command reads LOG_DIR/LOKI_URL from the environment."""
    monkeypatch.setenv("RUN_DIR", str(tmp_path_factory.mktemp("run")))


def test_command_draws_a_waterfall_or_prints_a_table_and_json(log_dir, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert cli.main(["trace", RID]) == 0
    out = capsys.readouterr().out
    assert "NGINX sends it to the client" in out and "█" in out and "queue before uWSGI" in out
    assert max(map(len, out.splitlines())) <= 100
    assert cli.main(["trace", RID, "--table"]) == 0
    out = capsys.readouterr().out
    assert "NGINX sends it to the client" in out and "measured" in out and "derived" in out
    assert cli.main(["trace", RID, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["number"] for s in data["steps"]] == list(range(1, 13))


def test_command_last(log_dir, capsys):
    assert cli.main(["trace", "--last", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["request_id"] == "someone-else-0001"


def test_command_last_n_lists_requests_to_pick_from(log_dir, capsys):
    access = log_dir / "nginx" / "access.log"
    more = [{**OTHER, "request_id": "api-00000001", "method": "POST", "uri": "/pc-builder-app/api/builds",
             "status": 429, "request_time": 0.0, "msec": 1795558535.0},
            {**OTHER, "request_id": "static-000001", "uri": "/pc-builder-app/static/js/app.js", "msec": 1795558536.0},
            {**OTHER, "request_id": "beacon-000001", "uri": "/pc-builder-app/api/timing", "msec": 1795558537.0}]
    access.write_text(access.read_text() + "".join(json.dumps(r) + "\n" for r in more))
    assert cli.main(["trace", "--last", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("the last 3 page or API requests") and "newest first" in lines[0]
    listed = [line.split()[1] for line in lines[2:5]]
    assert listed == ["api-00000001", "someone-else-0001", RID]
    assert re.search(r"api-00000001\s+429\s+0\.0\s+POST /pc-builder-app/api/builds$", lines[2])
    assert re.search(rf"{RID}\s+200\s+75\.0\s+GET /pc-builder-app/table$", lines[4])
    assert cli.main(["trace", "--last", "1", "--json"]) == 0
    assert [r["request_id"] for r in json.loads(capsys.readouterr().out)] == ["api-00000001"]
    assert cli.main(["trace", "--last", "--json"]) == 0  # no number: trace the last one
    assert json.loads(capsys.readouterr().out)["request_id"] == "api-00000001"


@pytest.mark.parametrize("raw", [f"  {RID}\n", f'"{RID}"', f"'{RID}' ", f"`{RID}`", RID[:8], f' "{RID[:12]}" '])
def test_an_id_as_pasted_is_trimmed_and_a_unique_prefix_is_enough(log_dir, capsys, raw):
    assert cli.main(["trace", raw, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["request_id"] == RID and data["missing"] == []


def test_a_prefix_of_several_ids_names_them(log_dir, capsys):
    twin = {**OTHER, "request_id": RID[:10] + "ffff0000"}
    access = log_dir / "nginx" / "access.log"
    access.write_text(access.read_text() + json.dumps(twin) + "\n")
    assert cli.main(["trace", RID[:9]]) == 1
    err = capsys.readouterr().err
    assert f"'{RID[:9]}' is the start of 2 request ids ({RID}, {RID[:10]}ffff0000)" in err and "give more" in err
    assert cli.main(["trace", RID, "--json"]) == 0  # the whole id is exact, not a prefix of the twin's
    assert json.loads(capsys.readouterr().out)["records"] == 7


def test_an_id_in_another_case_says_so(log_dir, capsys):
    assert cli.main(["trace", RID.upper()]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [f"stack: no request id '{RID.upper()}' in {log_dir}, but '{RID}' differs from it"
                                " only in case (request ids are case-sensitive)"]


@pytest.mark.parametrize("argv", [["trace", "--last", "0"], ["trace", "--last", "many"]])
def test_last_takes_a_positive_count(log_dir, capsys, argv):
    with pytest.raises(SystemExit):
        cli.main(argv)
    assert "--last" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["trace", "bad id!"], "is not a request id"),
    (["trace", "short"], "is not a request id"),
    (["trace", "'a310ca5'"], "is not a request id"),  # a prefix needs 8 characters
    (["trace", "unknown-id-0001"], "no log line carries request id"),
    (["trace"], "trace needs a request id (the X-Request-ID header of a response) or --last"),
    (["trace", RID, "--last"], "give a request id or --last, not both"),
])
def test_command_errors(log_dir, capsys, argv, message):
    assert cli.main(argv) == 1
    assert message in capsys.readouterr().err


class _FakeLoki(BaseHTTPRequestHandler):
    """Answers query_range like Loki: streams of [ns, line]; records each query."""
    queries: list = []

    def do_GET(self):
        url = urlparse(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.queries.append((url.path, params))
        if getattr(self, "fail", False):
            self.send_error(500, "too many outstanding requests")
            return
        if url.path != "/loki/api/v1/query_range":
            self.send_error(404)
            return
        lines = [r for r in recorded() if f'request_id="{r["request_id"]}"' in params["query"]]
        pattern = re.search(r"request_id=~`([^`]+)`", params["query"])  # RE2's syntax as Python reads it
        if pattern:
            lines = [r for r in recorded() if re.fullmatch(pattern.group(1), r["request_id"])]
        if 'layer="nginx"' in params["query"]:
            lines = [r for r in lines if r["layer"] == "nginx"] if pattern else \
                [r for r in recorded() if r["layer"] == "nginx"]
        streams = {}
        for r in lines:
            labels = {"service_name": "pc-builder", "layer": r["layer"], "instance": r["instance"]}
            line = dict(r)
            if r["layer"] == "uwsgi":
                line.pop("request_id")  # as structured metadata only
                labels["request_id"] = RID
            streams.setdefault(json.dumps(labels, sort_keys=True), []).append(["1795558533000000000", json.dumps(line)])
        body = json.dumps({"status": "success", "data": {"resultType": "streams", "result": [
            {"stream": json.loads(k), "values": v} for k, v in streams.items()]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_loki(tmp_path, monkeypatch):
    """Not a real Loki (none runs here): a local HTTP server speaking its query API."""
    server = HTTPServer(("127.0.0.1", 0), _FakeLoki)
    _FakeLoki.queries = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("LOKI_URL", f"http://127.0.0.1:{server.server_port}/loki/api/v1/push")
    yield _FakeLoki.queries
    server.shutdown()
    server.server_close()


def test_trace_from_loki(fake_loki, capsys):
    assert cli.main(["trace", RID, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["missing"] == [] and by_number(data)[4]["instance"] == "app1"
    path, params = fake_loki[-1]
    assert params["query"] == f'{{service_name="pc-builder"}} | request_id="{RID}"'
    assert int(params["end"]) - int(params["start"]) == 24 * 3600 * 10**9
    assert params["direction"] == "forward"


def test_last_and_unknown_from_loki(fake_loki, capsys):
    assert cli.main(["trace", "--last", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["request_id"] == "someone-else-0001"
    assert cli.main(["trace", "unknown-id-0001"]) == 1
    assert "no log line carries request id 'unknown-id-0001' in Loki" in capsys.readouterr().err


def test_prefix_and_case_from_loki(fake_loki, capsys):
    assert cli.main(["trace", f" '{RID[:10]}' ", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["request_id"] == RID
    exact, prefix = fake_loki[-2][1]["query"], fake_loki[-1][1]["query"]
    assert exact == f'{{service_name="pc-builder"}} | request_id="{RID[:10]}"'
    assert prefix == f'{{service_name="pc-builder"}} | request_id=~`{RID[:10]}.*`'
    assert cli.main(["trace", RID.upper()]) == 1
    assert f"but '{RID}' differs from it only in case" in capsys.readouterr().err
    assert fake_loki[-1][1]["query"] == f'{{service_name="pc-builder", layer="nginx"}} | request_id=~`(?i){RID.upper()}.*`'
    assert cli.main(["trace", "someone-else-0001.x"]) == 1  # the dot is a literal in the prefix query
    assert "request_id=~`someone-else-0001\\.x.*`" in fake_loki[-2][1]["query"]


def test_loki_unreachable_says_so_and_reads_the_local_files(log_dir, monkeypatch, capsys):
    monkeypatch.setenv("LOKI_URL", f"http://127.0.0.1:{free_port()}")
    assert cli.main(["trace", "--last", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["request_id"] == "someone-else-0001"
    assert captured.err.splitlines() == [
        f"stack: Loki at {os.environ['LOKI_URL']} is unreachable (connection refused);"
        f" reading the local files in {log_dir} instead"]


def test_loki_answering_an_error_is_one_line_offering_the_files(fake_loki, monkeypatch, capsys):
    monkeypatch.setattr(_FakeLoki, "fail", True, raising=False)
    assert cli.main(["trace", RID]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "answered 500 to the query" in err and "./stack trace --files reads the local files" in err
    assert cli.main(["trace", RID, "--files"]) == 1  # the fixture's LOG_DIR has no files
    assert "LOG_DIR=" in capsys.readouterr().err


# --- the default level: one wide event per request ------------------------------------

def test_steps_5_and_6_come_from_the_wide_event_at_info():
    result = trace.derive(recorded_at_info(), RID)
    steps = by_number(result)
    assert result["missing"] == [] and result["order"]["consistent"]
    assert steps[5]["time"] == pytest.approx(1795558533.267626)
    assert steps[5]["source"] == "measured" and "start_us" in steps[5]["detail"]
    assert steps[6]["time"] == pytest.approx(1795558533.269714)
    assert steps[6]["source"] == "measured" and "db_start_us" in steps[6]["detail"]
    assert steps[6]["db_queries"] == 1 and steps[6]["db_ms"] == 5.23
    assert hop(result, "  of which database")["ms"] == 5.23
    assert steps[7]["time"] == pytest.approx(1795558533.341316)


def test_at_info_the_wide_event_gives_the_same_steps_as_the_fine_events():
    fine, wide = trace.derive(recorded(), RID), trace.derive(recorded_at_info(), RID)
    for n in (1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12):
        assert by_number(wide)[n]["time"] == pytest.approx(by_number(fine)[n]["time"], abs=1e-6)
    # the fine events derive step 6 (query end - duration); the wide event measures it
    assert by_number(wide)[6]["time"] == pytest.approx(by_number(fine)[6]["time"], abs=1e-6)


def test_a_request_without_queries_has_step_6_at_step_5():
    lines = recorded_at_info()
    lines[2].update(db_queries=0, db_ms=0.0, db_rows=0, db_start_us=None, components=0)
    steps = by_number(trace.derive(lines, RID))
    assert steps[6]["time"] == steps[5]["time"] and steps[6]["source"] == "derived"
    assert steps[6]["db_queries"] == 0


def test_a_wide_event_without_start_us_leaves_step_5_missing_not_invented():
    lines = recorded_at_info()
    del lines[2]["start_us"]
    steps = by_number(trace.derive(lines, RID))
    assert steps[5]["time"] is None and steps[5]["source"] == "missing"


# --- finding one request in the local files ------------------------------------------

def write_logs(log_dir, lines_by_file: dict[str, list[dict]]) -> None:
    for name, records in lines_by_file.items():
        path = log_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_files_are_searched_for_the_id_and_only_its_lines_are_used(tmp_path):
    # the id also appears inside another request's fields (a referer, a beacon id):
    # those lines are found by the byte search but are not this request's
    decoy = {**OTHER, "referer": f"http://x/?id={RID}"}
    beacon_of_other = {**BROWSER, "request_id": "someone-else-0002", "beacon_request_id": RID}
    write_logs(tmp_path, {"nginx/access.log": [decoy, NGINX, {**OTHER, "msec": 1795558535.0}],
                          "uwsgi/app1.log": [UWSGI],
                          "app/app1.log": APP, "browser/app2.log": [beacon_of_other, BROWSER]})
    (tmp_path / "app" / "empty.log").write_text("")
    rid, records, where = trace.collect(RID, log_dir=tmp_path)
    assert rid == RID and where == str(tmp_path)
    assert sorted(r["event"] for r in records) == sorted(
        ["nginx.access", "uwsgi.request", *[a["event"] for a in APP], "browser.timing"])
    assert trace.derive(records, RID)["missing"] == []


def test_last_request_comes_from_the_tail_of_the_access_log(tmp_path):
    many = [{**OTHER, "request_id": f"older-{i:06d}", "msec": 1795558500.0 + i / 1000} for i in range(5000)]
    newest = {**NGINX, "msec": 1795558600.0}
    beacon = {**OTHER, "request_id": "beacon-000001", "msec": 1795558601.0,
              "uri": sources.BEACON_PATH}
    write_logs(tmp_path, {"nginx/access.log": [*many, newest, beacon]})
    assert [r["request_id"] for r in sources.Files(tmp_path).recent(1)] == [RID]
    assert [r["request_id"] for r in sources.Files(tmp_path).recent(3)] == ["older-004998", "older-004999", RID]
