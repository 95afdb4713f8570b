"""./stack logs: its filters, its lines (values as the files wrote them) and the follow that
merges several files in time order, on lines of the shapes each layer writes."""
from __future__ import annotations

import json

import pytest

from stackctl import logfiles, logview

NGINX = ('{"time":"2026-12-02T14:06:15+00:00","msec":1796220375.627,"layer":"nginx","instance":"vm",'
         '"event":"nginx.access","request_id":"r1","method":"GET","uri":"/x","status":502,'
         '"request_time":0.023,"upstream_status":"502"}')
UWSGI_OWN = ('{"time_us":1796220375005919,"layer":"uwsgi","instance":"app1","event":"uwsgi.server",'
             '"msg":"*** Starting uWSGI 2.0.31 (64bit) ***"}')
UWSGI_REQ = ('{"layer":"uwsgi","instance":"app1","event":"uwsgi.request","request_id":"r1",'
             '"method":"GET","uri":"/x","status":200,"size":35,"start_us":1796220375613974,'
             '"duration_us":7023,"pid":1,"worker":2}')
APP = ('{"level":"WARNING","logger":"pcbuilder.db","pid":30046,"layer":"app","instance":"app1",'
       '"event":"db.slow_query","route":null,"ok":true,"duration_ms":150.25,"request_id":"r2",'
       '"time":"2026-12-02T14:06:15.621338Z"}')
BROWSER = ('{"level":"INFO","event":"browser.timing","layer":"browser","instance":"app1",'
           '"request_id":"r3","timeOrigin":1796220974871.7,"requestStart":17.200000001117587,'
           '"tiny":1e-07,"time":"2026-12-02T14:16:15.837819Z"}')
ALL = [NGINX, UWSGI_OWN, UWSGI_REQ, APP, BROWSER]


def shown(filt: logview.Filter) -> list[str]:
    return [json.loads(line)["event"] for line in ALL if filt(logfiles.parse(line))]


def test_values_are_printed_as_the_line_wrote_them():
    app = logview.pretty(logfiles.parse(APP))
    assert " route=null " in app and " ok=true " in app and " duration_ms=150.25" in app
    browser = logview.pretty(logfiles.parse(BROWSER))
    assert "requestStart=17.200000001117587" in browser and "timeOrigin=1796220974871.7" in browser
    assert "tiny=1e-07" in browser
    assert "None" not in app + browser and "True" not in app
    # strings bare, nested values as JSON
    nested = logview.pretty({"layer": "app", "event": "e", "tags": ["a", None], "who": {"n": 1}})
    assert 'tags=["a",null]' in nested and 'who={"n":1}' in nested


def test_numbers_stay_numbers_for_the_time_order():
    record = logfiles.parse(NGINX)
    assert logfiles.event_time(record) == pytest.approx(1796220375.627)
    assert record["status"] == 502 and record["request_time"] + 1 == pytest.approx(1.023)


def test_filters_by_layer_level_status_and_request():
    everything = ["nginx.access", "uwsgi.server", "uwsgi.request", "db.slow_query", "browser.timing"]
    assert shown(logview.Filter()) == everything
    assert shown(logview.Filter(layers=logview.layers("nginx,app"))) == ["nginx.access", "db.slow_query"]
    # only the app and the browser write a level; uWSGI's own messages none
    assert shown(logview.Filter(min_level=logview.level("warning"))) == ["db.slow_query"]
    assert shown(logview.Filter(min_level=logview.level("INFO"))) == ["db.slow_query", "browser.timing"]
    assert shown(logview.Filter(statuses=logview.statuses("5xx"))) == ["nginx.access"]
    assert shown(logview.Filter(statuses=logview.statuses("404,200"))) == ["uwsgi.request"]
    assert shown(logview.Filter(statuses=logview.statuses("5xx"), request_id="r1",
                                layers=logview.layers("uwsgi"))) == []
    assert shown(logview.Filter(request_id="r1")) == ["nginx.access", "uwsgi.request"]


@pytest.mark.parametrize("parse, raw, says", [
    (logview.layers, "nginx,db", "'nginx,db': the layers are nginx, uwsgi, app, browser"),
    (logview.layers, ",", "',': the layers are"),
    (logview.level, "LOUD", "'LOUD': the levels are DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    (logview.statuses, "600", "'600' is not a status: a code (404) or a class (5xx)"),
    (logview.statuses, "5x", "'5x' is not a status"),
    (logview.statuses, "2xx,abc", "'abc' is not a status")])
def test_bad_filter_values_say_what_is_allowed(parse, raw, says):
    with pytest.raises(ValueError) as exc:
        parse(raw)
    assert str(exc.value).startswith(says)


def _line(t: float, layer: str, n: int) -> str:
    return json.dumps({"msec": t, "layer": layer, "event": f"{layer}.{n}"}) + "\n"


def test_follow_merges_the_files_in_time_order_and_starts_at_the_offsets(tmp_path):
    """Lines written to two files out of order (the later event first) come out in the order
    of their times; what was there before the offsets is not replayed."""
    (tmp_path / "nginx").mkdir()
    (tmp_path / "app").mkdir()
    nginx, app = tmp_path / "nginx" / "access.log", tmp_path / "app" / "app1.log"
    nginx.write_text(_line(50.0, "nginx", 0))
    app.write_text("")
    offsets = logfiles.end_offsets(tmp_path)
    now = [100.0]
    out, polls = [], []

    def stop():
        polls.append(1)
        if len(polls) == 1:  # first poll: the later lines of both files
            with open(nginx, "a") as fh:
                fh.write(_line(100.3, "nginx", 2))
            with open(app, "a") as fh:
                fh.write(_line(100.1, "app", 1) + '{"half": ')  # a line still being written
        elif len(polls) == 2:  # next poll: an earlier one arrives late, the rest of the half line
            with open(nginx, "a") as fh:
                fh.write(_line(100.2, "nginx", 3))
            with open(app, "a") as fh:
                fh.write('"line", "layer": "app", "msec": 100.4, "event": "app.4"}\n')
        now[0] += 0.5
        return len(polls) > 4

    logfiles.follow(tmp_path, lambda line: out.append(json.loads(line)["event"]), stop,
                    offsets=offsets, interval=0, hold=1.0, clock=lambda: now[0])
    assert out == ["app.1", "nginx.3", "nginx.2", "app.4"]


def test_follow_holds_a_line_until_its_time_is_past_the_hold(tmp_path):
    (tmp_path / "app").mkdir()
    log = tmp_path / "app" / "app1.log"
    log.write_text(_line(1000.0, "app", 1))
    now, out, seen = [1000.0], [], []

    def stop():
        seen.append((now[0], len(out)))  # the clock, and what was emitted before this poll
        now[0] += 0.25
        return now[0] > 1002

    logfiles.follow(tmp_path, out.append, stop, offsets={log: 0}, interval=0, hold=1.0,
                    clock=lambda: now[0])
    # emitted in the poll whose clock reads 1001.0 (= its time + hold), not before
    assert seen[:5] == [(1000.0, 0), (1000.25, 0), (1000.5, 0), (1000.75, 0), (1001.0, 1)]
    assert len(out) == 1
