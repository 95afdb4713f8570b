"""Commands of ``./stack``: up, down, reload, status, logs, trace (see ``./stack help``)."""
from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xmlrpc.client
from pathlib import Path

# small modules of the app's package; no Flask is loaded by this (see create_app)
from pcbuilder.healthcheck import check as uwsgi_check
from pcbuilder.loki_url import query_base, redacted

from . import k8s, leftovers, logfiles, logview, render, settings, tools
from .console import StackError, say, warn
from .settings import Settings, SettingsError
from .supervisor_client import POLL_SECONDS, processes, proxy, stop_programs, supervisord_pid

READY_PATH = "/pc-builder-app/readyz"


# --- up -------------------------------------------------------------------------------

def _preflight(s: Settings) -> None:
    pid = supervisord_pid(s.run_dir)
    if pid:
        raise StackError(f"a stack is already running from {s.run_dir} (supervisord pid {pid});"
                         " run ./stack down first, or set RUN_DIR for a second stack")
    _stop_leftovers(s)
    if not Path(s.nginx_bin).exists():
        raise StackError(f"nginx not found at {s.nginx_bin}: install it (apt-get install nginx)"
                         " or set NGINX_BIN")
    if not Path(s.uwsgi_bin).exists():
        raise StackError(f"uwsgi not found at {s.uwsgi_bin}: pip install -r requirements.txt"
                         " or set UWSGI_BIN")
    if tools.missing("setpriv"):  # util-linux: every program's parent-death signal
        raise StackError(tools.missing("setpriv"))
    for name, binary, used in (("LOKI_BIN", s.loki_bin, s.runs_loki),
                               ("ALLOY_BIN", s.alloy_bin, s.ships_with_alloy),
                               ("PROMETHEUS_BIN", s.prometheus_bin, s.runs_alerting),
                               ("ALERTMANAGER_BIN", s.alertmanager_bin, s.runs_alerting)):
        if used and not Path(binary).is_file():
            raise StackError(f"{name}={binary} is not there: give the program's path, or off")
    longest = str(s.socket_path(s.instances[-1]))
    if len(longest.encode()) > 100:
        raise StackError(f"RUN_DIR is too long for a unix socket path ({longest}); use a shorter one")
    ports = [(s.http_addr, s.http_port, "HTTP_PORT"), (s.http_addr, s.https_port, "HTTPS_PORT")]
    if s.runs_loki:
        ports += [("127.0.0.1", s.loki_port, "LOKI_PORT"), ("127.0.0.1", s.loki_grpc_port, "LOKI_GRPC_PORT")]
    if s.ships_with_alloy:
        ports.append(("127.0.0.1", s.alloy_port, "ALLOY_PORT"))
    if s.runs_alerting:
        ports += [("127.0.0.1", s.prometheus_port, "PROMETHEUS_PORT"),
                  ("127.0.0.1", s.alertmanager_port, "ALERTMANAGER_PORT")]
    by_port: dict[int, str] = {}
    for _addr, port, name in ports:
        if port in by_port:
            raise StackError(f"{by_port[port]} and {name} are both {port}; pick two ports")
        by_port[port] = name
    for addr, port, name in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((addr, port))
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL:
                    raise StackError(f"HTTP_ADDR={s.http_addr} is not an address of this machine"
                                     " (127.0.0.1: this machine only; 0.0.0.0: every interface)") from None
                raise StackError(f"cannot use {addr}:{port} ({exc.strerror});"
                                 f" is something else listening? set {name}") from None


def _make_dir(label: str, path: Path) -> None:
    """mkdir -p with one line naming the setting when it cannot be done."""
    try:
        blocker = next((p for p in (path, *path.parents) if p.exists() or p.is_symlink()), None)
        if blocker is not None and not blocker.is_dir():
            raise StackError(f"{label} is a file, not a directory" if blocker == path else
                             f"{label} cannot be created: {blocker} is a file")
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StackError(f"{label} cannot be created ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise StackError(f"{label} is not writable by this user")


def _make_dirs(s: Settings) -> None:
    wanted = [("LOG_DIR", s.log_dir, s.log_dir / sub) for sub in ("", "nginx", "uwsgi", "app", "browser")]
    wanted += [("DATA_DIR", s.data_dir, s.data_dir), ("RUN_DIR", s.run_dir, s.run_dir),
               ("RUN_DIR", s.run_dir, s.run_dir / "nginx-temp")]
    if s.database_path is not None:
        if s.database_path.is_dir():
            raise StackError(f"DATABASE_PATH={s.database_path} is a directory, not a file")
        wanted.append(("DATABASE_PATH", s.database_path, s.database_path.parent))
    for name, value, path in wanted:
        label = f"{name}={value}" + ("" if path == value else f": {path}")
        _make_dir(label, path)


def _ensure_certificate(s: Settings) -> None:
    """The one script compose runs too: checks the pair, or generates one where allowed."""
    env = {**os.environ, "TLS_CERT": str(s.tls_cert), "TLS_KEY": str(s.tls_key),
           "OPENSSL": str(tools.path("openssl")),
           "TLS_SELF_SIGNED_DAYS": str(s.tls_self_signed_days),
           # a pair is generated only into the default location, never at a path the user named
           "TLS_GENERATE": "off" if {"TLS_CERT", "TLS_KEY"} & s.provided else "on"}
    result = subprocess.run(["sh", str(render.TLS_CERT_SCRIPT)], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise StackError(lines[-1] if lines else f"{render.TLS_CERT_SCRIPT.name} failed"
                         f" (exit {result.returncode})")
    if result.stdout.strip():
        say(f"generated a self-signed TLS certificate: {s.tls_cert}")


def _check_loki(s: Settings) -> None:
    """A warning, never a refusal: the app keeps serving and logging locally without Loki."""
    from . import loki  # requests: loaded only by the commands that talk to Loki

    ok, line = loki.readiness(s.loki_target)
    if ok:
        say(line)
    else:
        say(f"warning: {line}; starting anyway: the app's lines stay in {s.log_dir}, and"
            " what it fails to push meanwhile never reaches Loki")


def _nginx_test(s: Settings) -> None:
    result = subprocess.run(
        [s.nginx_bin, "-t", "-q", "-p", str(s.run_dir / "nginx-temp"), "-c", str(s.run_dir / "nginx.conf")],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise StackError("nginx rejects the rendered config:\n" + result.stderr.strip())


# Probes go to our own NGINX, whose certificate may be the self-signed one.
# (Built on first use: loading the CA store costs every ./stack command ~0.1 s.)
def _probe_tls() -> ssl.SSLContext:
    global _PROBE_TLS
    if _PROBE_TLS is None:
        _PROBE_TLS = ssl.create_default_context()
        _PROBE_TLS.check_hostname = False
        _PROBE_TLS.verify_mode = ssl.CERT_NONE
    return _PROBE_TLS


_PROBE_TLS: ssl.SSLContext | None = None


def _get(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=_probe_tls()) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return 0


FAILED_STATES = ("FATAL", "BACKOFF", "EXITED")


def _say_log_path(s: Settings) -> None:
    """One line on where the lines go beyond the local files, and what is missing for more."""
    where = redacted(query_base(s.loki_target))
    if s.runs_loki:
        say(f"starting Loki ({s.loki_bin}) at {where}, data in {s.data_dir / 'loki'}")
    if not s.loki_target:
        why = "LOKI_BIN=off" if "LOKI_BIN" in s.provided else "no Loki binary (LOKI_BIN, .tools/bin/loki)"
        say(f"{why}: the lines stay in the local files; for Loki and Alloy see docs/logs.md")
    elif not s.ships_with_alloy:
        say(f"the app ships to Loki at {where}; no Alloy binary (ALLOY_BIN, .tools/bin/alloy), so"
            " NGINX's, uWSGI's and the browser's lines stay in the local files only")
    else:
        say(f"the app ships to Loki at {where}; Alloy ({s.alloy_bin}) ships NGINX's, uWSGI's and"
            " the browser's lines")


def _loki_ready(s: Settings) -> bool:
    return _get(f"http://127.0.0.1:{s.loki_port}/ready") == 200


def _say_alerting(s: Settings) -> None:
    if s.runs_alerting:
        say(f"alerts: Prometheus at http://127.0.0.1:{s.prometheus_port}, Alertmanager at"
            f" http://127.0.0.1:{s.alertmanager_port} (./stack alerts; docs/alerts.md)")
    elif s.runs_loki:
        gone = [f"{name}=off" if name in s.provided else f"{tools.path(tool)} not found ({name})"
                for name, tool, binary in (("PROMETHEUS_BIN", "prometheus", s.prometheus_bin),
                                           ("ALERTMANAGER_BIN", "alertmanager", s.alertmanager_bin)) if not binary]
        say(f"no alerts ({', '.join(gone)}): Loki's ruler records for its own API only; for"
            " Prometheus and Alertmanager see docs/alerts.md")


def _alerting_check(s: Settings) -> None:
    """Like nginx -t: the rendered configs checked by Debian's promtool and amtool, when there."""
    checks = [("promtool", ["check", "config", str(s.run_dir / "prometheus" / "prometheus.yml")]),
              ("amtool", ["check-config", str(s.run_dir / "alertmanager.yml")])]
    for tool, args in checks:
        if tools.missing(tool):
            continue
        result = subprocess.run([str(tools.path(tool)), *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"{tool} rejects the rendered config:\n{(result.stdout + result.stderr).strip()}")


def _alerting_ready(s: Settings) -> bool:
    return (_get(f"http://127.0.0.1:{s.prometheus_port}/-/ready") == 200
            and _get(f"http://127.0.0.1:{s.alertmanager_port}/-/ready") == 200)


def _explain_failure(s: Settings, program: dict) -> str:
    name = program["name"]
    lines = [f"{name} is {program['statename']}: {program.get('spawnerr') or program.get('description')}"]
    own_log = s.log_dir / "nginx" / "error.log" if name == "nginx" else s.log_dir / "uwsgi" / f"{name}.log"
    for path in (s.run_dir / f"{name}.err", own_log):
        if path.exists() and path.stat().st_size:
            tail = path.read_text(errors="replace").splitlines()[-8:]
            lines.append(f"--- last lines of {path}:")
            lines += tail
    return "\n".join(lines)


def start(s: Settings) -> None:
    """Start supervisord (daemonized) and wait until readyz answers through NGINX."""
    _preflight(s)
    _make_dirs(s)
    render.write_all(s)
    s.save()  # down, reload, status, logs and trace use these, not the caller's shell
    _ensure_certificate(s)
    _nginx_test(s)
    if s.runs_alerting:
        _alerting_check(s)
    if s.loki_url:
        _check_loki(s)
    say(f"starting nginx and {s.app_instances} uWSGI instance(s); logs in {s.log_dir}")
    _say_log_path(s)
    _say_alerting(s)
    conf = s.run_dir / "supervisord.conf"
    # uWSGI reads every UWSGI_<NAME> variable as its option <name>: ./stack's own UWSGI_BIN
    # (which uwsgi binary to run) must not reach it, or strict mode refuses "bin".
    env = {k: v for k, v in os.environ.items() if k != "UWSGI_BIN"}
    result = subprocess.run([s.python_bin, "-m", "supervisor.supervisord", "-c", str(conf)],
                            capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise StackError("supervisord did not start:\n" + (result.stderr or result.stdout))
    started = time.monotonic()
    deadline = started + s.start_timeout
    url = s.base_url + READY_PATH
    reported = 0
    while time.monotonic() < deadline:
        try:
            programs = processes(s.run_dir) if (s.run_dir / "supervisor.sock").exists() else []
        except OSError:
            programs = []
        failed = [p for p in programs if p["statename"] in FAILED_STATES]
        if failed:
            message = "\n".join(_explain_failure(s, p) for p in failed)
            try:
                stop(s, quiet=True)
            except StackError as exc:  # the cause first, whatever stopping the rest did
                message += f"\nstopping the rest: {exc}"
            raise StackError("the stack failed to start:\n" + message)
        # supervisord calls a program RUNNING once it has stayed up for its startsecs
        all_running = bool(programs) and all(p["statename"] == "RUNNING" for p in programs)
        if (all_running and _get(url) == 200 and (not s.runs_loki or _loki_ready(s))
                and (not s.runs_alerting or _alerting_ready(s))):
            say(f"ready: {s.base_url}/pc-builder-app/main")
            return
        time.sleep(POLL_SECONDS)
        waited = int(time.monotonic() - started)
        if waited >= reported + 2:
            reported = waited
            say(f"waiting for {url} ({waited}s)")
    stop(s, quiet=True)
    raise StackError(f"{url} did not answer 200 within {s.start_timeout}s; see {s.run_dir}/*.err"
                     f" and {s.log_dir}")


def _orphaned(found: list) -> str:
    return (f"the supervisord of this RUN_DIR is gone, but {len(found)} of its programs"
            f" still run: {leftovers.describe(found)}")


def _stop_leftovers(s: Settings) -> bool:
    """What a dead supervisord left running from RUN_DIR, stopped as ./stack down would."""
    found = leftovers.find(s.run_dir)
    if not found:
        return False
    say(_orphaned(found) + "; stopping them")
    leftovers.stop(found, progress=say)
    say("stopped")
    return True


def stop(s: Settings, quiet: bool = False) -> bool:
    pid = supervisord_pid(s.run_dir)
    if not pid:
        if _stop_leftovers(s):
            return True
        if not quiet:
            say(f"no stack running from {s.run_dir}")
        return False
    if not quiet:
        say("stopping (in-flight requests finish first)...")
    deadline = time.monotonic() + 60
    try:
        stop_programs(s.run_dir, timeout=55)
        proxy(s.run_dir).shutdown()
    except (OSError, xmlrpc.client.Error):  # supervisord is going anyway, or not answering
        os.kill(pid, signal.SIGTERM)
    while time.monotonic() < deadline:
        if not leftovers.alive(pid):  # gone, or a zombie its parent has not reaped yet
            if not quiet:
                say("stopped")
            return True
        time.sleep(POLL_SECONDS)
    raise StackError(f"supervisord (pid {pid}) did not exit within 60s")


def cmd_up(s: Settings, args) -> int:
    start(s)
    if args.detach:
        return 0
    say("following all layers' logs; Ctrl-C stops the stack")
    stopping = []

    def _on_signal(signum, _frame):
        stopping.append(signum)

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        logfiles.follow(s.log_dir, lambda line: print(_pretty_line(line), flush=True),
                        stop=lambda: bool(stopping))
        print()
    except BrokenPipeError:  # `./stack up | head`: nobody reads any more; still stop
        _silence_stdout()
    stop(s)
    return 0


def cmd_down(s: Settings, _args) -> int:
    stop(s)
    return 0


def cmd_reload(s: Settings, _args) -> int:
    """Graceful reload of every uWSGI instance (SIGHUP: workers finish, then respawn)."""
    if not supervisord_pid(s.run_dir):
        raise StackError(f"no stack running from {s.run_dir}")
    server = proxy(s.run_dir)
    # the instances this supervisord runs, whatever APP_INSTANCES says today
    for name in [p["name"] for p in processes(s.run_dir) if _is_instance(p["name"])]:
        server.signalProcess(name, "HUP")
        say(f"{name}: graceful reload requested")
    return 0


#: supervisord programs that are not uWSGI instances
HELPERS = ("nginx", "loki", "alloy", "logrotate", "prometheus", "alertmanager")


def _is_instance(program: str) -> bool:
    return program not in HELPERS


# --- status ---------------------------------------------------------------------------

def status_report(s: Settings) -> dict:
    pid = supervisord_pid(s.run_dir)
    report = {"running": bool(pid), "supervisord_pid": pid, "url": s.base_url + "/pc-builder-app/main",
              "log_dir": str(s.log_dir), "processes": []}
    if not pid:
        report["leftovers"] = [{"name": left.name, "pid": left.pid} for left in leftovers.find(s.run_dir)]
        return report
    for info in processes(s.run_dir):
        entry = {"name": info["name"], "state": info["statename"], "pid": info["pid"] or None,
                 "uptime_s": (info["now"] - info["start"]) if info["pid"] else 0}
        if info["name"] == "nginx":
            code = _get(s.base_url + READY_PATH)
            entry.update(role="nginx", health="ready" if code == 200 else f"readyz answered {code or 'nothing'}")
        elif info["name"] == "loki":
            code = _get(f"http://127.0.0.1:{s.loki_port}/ready")
            entry.update(role="loki", url=f"http://127.0.0.1:{s.loki_port}",
                         health="ready" if code == 200 else f"/ready answered {code or 'nothing'}")
        elif info["name"] == "alloy":
            code = _get(f"http://127.0.0.1:{s.alloy_port}/-/ready")
            entry.update(role="alloy", health="ready" if code == 200 else f"/-/ready answered {code or 'nothing'}")
        elif info["name"] in ("prometheus", "alertmanager"):
            port = s.prometheus_port if info["name"] == "prometheus" else s.alertmanager_port
            code = _get(f"http://127.0.0.1:{port}/-/ready")
            entry.update(role=info["name"], url=f"http://127.0.0.1:{port}",
                         health="ready" if code == 200 else f"/-/ready answered {code or 'nothing'}")
        elif info["name"] == "logrotate":
            entry.update(role=info["name"], health="ready" if info["statename"] == "RUNNING" else info["statename"])
        else:
            try:
                code = uwsgi_check(str(s.socket_path(info["name"])), READY_PATH)
                entry.update(health="ready" if code == 200 else f"readyz answered {code}")
            except (OSError, ValueError, IndexError) as exc:
                entry.update(health=f"unreachable ({exc})")
            entry.update(role="uwsgi", socket=str(s.socket_path(info["name"])))
        report["processes"].append(entry)
    return report


def cmd_status(s: Settings, args) -> int:
    report = status_report(s)
    if args.json:
        print(json.dumps(report, indent=2))
    elif report.get("leftovers"):
        found = [leftovers.Leftover(p["name"], p["pid"]) for p in report["leftovers"]]
        print(f"stack: not running: {_orphaned(found)}; ./stack down stops them")
    elif not report["running"]:
        print(f"stack: not running (RUN_DIR {s.run_dir})")
    else:
        print(f"stack: running, {report['url']} (supervisord pid {report['supervisord_pid']})")
        print(f"{'PROCESS':<12} {'STATE':<9} {'PID':>8} {'UPTIME':>8}  HEALTH")
        for p in report["processes"]:
            print(f"{p['name']:<12} {p['state']:<9} {p['pid'] or '-':>8} {p['uptime_s']:>7}s  {p['health']}")
    healthy = report["running"] and all(p["health"] == "ready" for p in report["processes"])
    return 0 if healthy else 1


# --- logs -----------------------------------------------------------------------------

def _pretty_line(line: str) -> str:
    record = logfiles.parse(line)
    return logview.pretty(record) if record is not None else f"(not JSON) {line}"


#: lines ``logs -f`` shows before following when no -n is given (tail's default)
FOLLOW_BACKLOG = 10


def cmd_logs(s: Settings, args) -> int:
    if not s.log_dir.is_dir():
        raise StackError(f"LOG_DIR={s.log_dir} does not exist: no stack has logged there")
    wanted = logview.Filter(args.layer, args.level, args.status, args.request)
    offsets = logfiles.end_offsets(s.log_dir)  # history up to here, follow from here
    records = [r for r in map(logfiles.parse, logfiles.history(offsets)) if r is not None and wanted(r)]
    if args.request and not records and not args.follow:
        raise StackError(f"no log line carries request id {args.request!r} in {s.log_dir}")
    records.sort(key=lambda r: logfiles.event_time(r) or 0.0)
    lines = FOLLOW_BACKLOG if args.lines is None and args.follow else args.lines
    for record in records if lines is None else records[len(records) - lines:]:
        print(logview.pretty(record))
    if args.follow:
        def emit(line: str) -> None:
            record = logfiles.parse(line)
            if record is None:
                if wanted == logview.Filter():
                    print(f"(not JSON) {line}", flush=True)
            elif wanted(record):
                print(logview.pretty(record), flush=True)

        try:
            logfiles.follow(s.log_dir, emit, stop=lambda: False, offsets=offsets)
        except KeyboardInterrupt:
            pass
    return 0


# --- trace ----------------------------------------------------------------------------

def cmd_trace(s: Settings, args) -> int:
    from . import trace
    from .trace import table, waterfall

    if args.request_id is None and args.last is None:
        raise StackError("trace needs a request id (the X-Request-ID header of a response)"
                         " or --last for the most recent request")
    if args.request_id is not None and args.last is not None:
        raise StackError("give a request id or --last, not both")
    where_from = {"log_dir": s.log_dir, "loki_url": "" if args.files else s.loki_target,
                  "since_s": args.since_hours * 3600, "warn": warn}
    try:
        if args.last not in (None, 0):
            requests, where = trace.recent(args.last, **where_from)
            print(json.dumps(requests, indent=2) if args.json else _recent_text(requests, where))
            return 0
        rid, records, where = trace.collect(args.request_id, **where_from)
    except trace.TraceError as exc:
        raise StackError(str(exc)) from None
    result = trace.derive(records, rid)
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.table:
        print(table.render(result, where))
    else:
        unicode = not args.ascii and waterfall.can_draw(sys.stdout.encoding)
        print(waterfall.render(result, where, columns=shutil.get_terminal_size((100, 24)).columns,
                               unicode=unicode))
    return 0


def _recent_text(requests: list[dict], where: str) -> str:
    """``--last N``: the requests to pick from, newest first."""
    from .trace.table import clock

    if not requests:
        return f"no page or API request in the NGINX access log ({where})"
    out = [f"the last {len(requests)} page or API request{'s' if len(requests) != 1 else ''} ({where}), newest first:",
           f"{'time (local)':<15}  {'request id':<36} {'status':>6} {'ms':>9}  request"]
    for r in reversed(requests):
        took = r.get("request_time")
        took = f"{took * 1000:.1f}" if isinstance(took, (int, float)) else "?"
        out.append(f"{clock(r.get('msec')):<15}  {r['request_id']:<36} {r.get('status')!s:>6} {took:>9}  "
                   f"{r.get('method')} {r.get('uri')}")
    out.append("./stack trace <id> draws one of them (a unique start of the id is enough)")
    return "\n".join(out)


def _last_count(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--last takes how many requests to list, not {raw!r}"
                                         " (without a number it traces the last one)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--last {raw}: give a positive number of requests to list")
    return value


# --- alerts ---------------------------------------------------------------------------

def cmd_alerts(s: Settings, args) -> int:
    """What is firing or pending now; exit 0 either way (a tool to read, not a check)."""
    from . import alerts

    if not supervisord_pid(s.run_dir):
        print(f"stack: no alerts: no stack runs from {s.run_dir}, so no ruler either")
        return 0
    if not s.runs_alerting:
        print("stack: no alerts: this stack runs no ruler (it needs its own Loki, Prometheus and"
              " Alertmanager: docs/alerts.md)")
        return 0
    try:
        found = alerts.fetch(f"http://127.0.0.1:{s.prometheus_port}")
    except alerts.AlertsError as exc:
        raise StackError(str(exc)) from None
    print(json.dumps(found, indent=2) if args.json else alerts.text(found))
    return 0


# --- entry point ----------------------------------------------------------------------

def _count(raw: str) -> int:
    if not raw.isdigit():
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number (0 or more)")
    return int(raw)


def _checked(parse):
    """An argparse type from a parser that raises ValueError with the reason."""
    def check(raw: str):
        try:
            return parse(raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return check


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="./stack", description="Run the PC-builder stack without Docker.")
    sub = p.add_subparsers(dest="command", required=True)
    # needs: the settings a command reads, when no stack runs from RUN_DIR (None: all of them)
    up = sub.add_parser("up", help="start nginx + uWSGI (foreground, Ctrl-C stops)")
    up.add_argument("-d", "--detach", action="store_true", help="return once ready")
    up.set_defaults(func=cmd_up, needs=None)
    sub.add_parser("down", help="stop the stack gracefully").set_defaults(func=cmd_down, needs=set())
    sub.add_parser("reload", help="gracefully reload the uWSGI instances").set_defaults(
        func=cmd_reload, needs=set())
    st = sub.add_parser("status", help="each process, its PID and health")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status, needs=set())
    lg = sub.add_parser("logs", help="all layers' JSON lines, prettified, in time order")
    lg.add_argument("-f", "--follow", action="store_true",
                    help=f"then print new lines as they come, in time order (with no -n: after"
                         f" the last {FOLLOW_BACKLOG})")
    lg.add_argument("-n", "--lines", type=_count, metavar="N", help="only the last N lines (0: none)")
    lg.add_argument("--layer", type=_checked(logview.layers), metavar="L[,L]",
                    help=f"only these layers ({', '.join(logview.LAYERS)})")
    lg.add_argument("--level", type=_checked(logview.level), metavar="LEVEL",
                    help="only lines at LEVEL or worse (the app's and the browser's: DEBUG, INFO,"
                         " WARNING, ERROR)")
    lg.add_argument("--status", type=_checked(logview.statuses), metavar="S[,S]",
                    help="only lines of requests answered with these statuses (404, 5xx)")
    lg.add_argument("--request", metavar="ID", help="only the lines of this request id")
    lg.set_defaults(func=cmd_logs, needs={"LOG_DIR"})
    tr = sub.add_parser("trace", help="the twelve steps of one request (Loki if LOKI_URL, else files)")
    tr.add_argument("request_id", nargs="?", metavar="ID")
    tr.add_argument("--last", nargs="?", type=_last_count, const=0, metavar="N",
                    help="trace the most recent page or API request; with N, list the last N")
    view = tr.add_mutually_exclusive_group()
    view.add_argument("--table", action="store_true", help="every step's time, source and detail, and the hops")
    view.add_argument("--json", action="store_true", help="the trace as data")
    tr.add_argument("--ascii", action="store_true", help="draw the waterfall in plain ASCII")
    tr.add_argument("--files", action="store_true", help="read the local files even when LOKI_URL is set")
    tr.add_argument("--since-hours", type=float, default=24.0, help="Loki search window (default 24)")
    tr.set_defaults(func=cmd_trace, needs={"LOG_DIR", "LOKI_URL", "LOKI_BIN", "LOKI_PORT"})
    al = sub.add_parser("alerts", help="the alerts firing or pending now (Prometheus)")
    al.add_argument("--json", action="store_true", help="a JSON array: name, state, severity, summary, since...")
    al.set_defaults(func=cmd_alerts, needs={"LOKI_URL", "LOKI_BIN", "PROMETHEUS_BIN", "ALERTMANAGER_BIN",
                                            "PROMETHEUS_PORT"})
    k8s.add_parser(sub)  # ./stack k8s render: stackctl/k8s.py
    return p


def settings_for(needs: set[str] | None, env=None) -> Settings:
    """``up`` checks every setting; the other commands act on the stack running from
    RUN_DIR with the settings it was started with, and need only their own when none runs."""
    env = os.environ if env is None else env
    if needs is None:
        return Settings.from_env(env)
    run_dir = Settings.from_env(env, needed={"RUN_DIR"}).run_dir
    if supervisord_pid(run_dir):
        running = settings.saved(run_dir)
        if running is not None:
            ignored = settings.differing(env, running)
            if ignored:
                warn(f"using the settings the stack in {run_dir} was started with; ignoring"
                     f" {', '.join(ignored)} from the environment")
            return running
    return Settings.from_env(env, needed={"RUN_DIR", *needs})


def _silence_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        code = args.func(settings_for(args.needs), args)
        sys.stdout.flush()  # here, not at exit, so a closed pipe is caught below
        return code
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"stack: {problem}", file=sys.stderr)
        return 1
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `./stack status | head -1`
        _silence_stdout()
        return 1
    except KeyboardInterrupt:
        print("stack: interrupted", file=sys.stderr)
        return 130
    except xmlrpc.client.Fault as exc:
        print(f"stack: supervisord refused: {exc.faultString}", file=sys.stderr)
        return 1
    except OSError as exc:  # anything the checks above did not foresee: still one line
        print(f"stack: {exc}", file=sys.stderr)
        return 1
