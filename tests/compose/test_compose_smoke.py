"""The compose stack for real, on a container engine: Debian's podman serving the Docker
API, driven by the Compose v2 binary, with the project's Dockerfiles and compose file.

What stands in for what (tests/compose/engine.py, docs/testing.md "The compose smoke test"): the
base images deploy/images.yaml pins are built locally from Debian packages (Python 3.11.2 for
the python image, Debian unstable's NGINX 1.30.6 for the nginx image's 1.30.7);
`loki` is the test's push endpoint stand-in, not Loki (it answers compose's own health check,
`loki -health`), so no ruler evaluates anything here; Prometheus and Alertmanager are Debian's
(2.42 and 0.25) laid out like their images, run with compose's files; Alloy and Grafana are not started, so NGINX's and uWSGI's lines are checked
in the `logs` volume, the app's also at the push endpoint.

The tests run in order on one compose project and share it: pages, scale up, scale down,
one replica stopped, rotation, then stop + down + up. Run alone with `-m compose`.
Skipped, with the reason, only when podman cannot start here at all.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from stackctl import tools
from tests.compose.engine import EngineUnavailable, Podman, ensure_standin_images
from tests.support.images import PINNED, tag_of
from tests.support.env import free_port
from tests.support.stack import UWSGI_OWN_LINE
from tests.support.upstream_attempts import assert_none_waited, failed_attempts
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.compose]

ROOT = Path(__file__).resolve().parents[2]
OVERRIDE = Path(__file__).resolve().parent / "docker-compose.smoke.yml"
BASE = "/pc-builder-app"
# small enough that this test's requests rotate every layer's files several times, with
# room to keep every old file (so every id can be counted)
ROTATION = {"LOG_MAX_BYTES": "16384", "LOG_KEEP": "500", "LOG_ROTATE_INTERVAL": "1"}
LAYERS = {"nginx": ("nginx/access.log*", "nginx.access"),
          "uwsgi": ("uwsgi/*.log*", "uwsgi.request"),
          "app": ("app/*.log*", "request.finished")}


def say(config, line: str) -> None:
    """Timings go to the terminal even when output is captured: the issue asks for them."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter and capture:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"compose smoke: {line}")


@dataclass
class Stack:
    podman: Podman
    project: str
    env: dict
    http: int
    https: int
    loki: int
    prometheus: int = 0
    alertmanager: int = 0
    sent: list = field(default_factory=list)  # every request id this module sent

    # ---------------------------------------------------------------- engine
    def compose(self, *args: str, timeout: float = 900) -> str:
        cmd = [str(tools.docker_compose()), "--project-directory", str(ROOT), "--env-file", os.devnull,
               "-p", self.project, "-f", str(ROOT / "docker-compose.yml"), "-f", str(OVERRIDE), *args]
        result = subprocess.run(cmd, env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result.stdout

    def containers(self, service: str, all_states: bool = False) -> list[dict]:
        args = ["ps", "--format", "json", "--filter", f"label=com.docker.compose.project={self.project}",
                "--filter", f"label=com.docker.compose.service={service}"]
        found = self.podman.json(*args, *(["--all"] if all_states else [])) or []
        return sorted(found, key=lambda c: c["Names"][0])

    def inspect(self, container: str) -> dict:
        return self.podman.json("inspect", container)[0]

    def volume(self, name: str) -> Path:
        return Path(self.podman.json("volume", "inspect", f"{self.project}_{name}")[0]["Mountpoint"])

    # ---------------------------------------------------------------- traffic
    def get(self, path: str, rid: str | None = None, https: bool = False, timeout: float = 30):
        url = f"https://127.0.0.1:{self.https}{path}" if https else f"http://127.0.0.1:{self.http}{path}"
        headers = {"X-Request-ID": rid} if rid else {}
        if rid:
            self.sent.append(rid)
        context = ssl._create_unverified_context() if https else None  # self-signed
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout,
                                        context=context) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def ready(self) -> bool:
        try:
            return self.get(f"{BASE}/readyz", timeout=5)[0] == 200
        except OSError:
            return False

    # ---------------------------------------------------------------- logs
    def records(self, pattern: str) -> tuple[list[dict], list[str], int]:
        """JSON lines of the current and rotated files in the `logs` volume, the lines that
        are not JSON, and how many rotated files there are."""
        found, other, files = [], [], sorted(self.volume("logs").glob(pattern))
        for path in files:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:  # renamed between the glob and the read: the next poll sees it
                continue
            for line in text.splitlines():
                try:
                    found.append(json.loads(line))
                except ValueError:
                    other.append(line)
        return found, other, sum(1 for f in files if not f.name.endswith(".log"))

    def layer_lines(self, layer: str, rid: str) -> list[dict]:
        pattern, event = LAYERS[layer]
        return [r for r in self.records(pattern)[0] if r.get("request_id") == rid and r.get("event") == event]

    def api(self, port: int, path: str):
        """A JSON answer of Prometheus's or Alertmanager's HTTP API (published for the test)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return json.loads(resp.read())

    def pushed(self) -> list[dict]:
        """What the app pushed to the stand-in Loki, each line parsed."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.loki}/entries", timeout=10) as resp:
            return [json.loads(e["line"]) for e in json.loads(resp.read())]


class HealthDriver(threading.Thread):
    """podman runs health checks from systemd timers, which this machine has not: without
    this, `depends_on: service_healthy` would wait forever."""

    def __init__(self, podman: Podman, project: str):
        super().__init__(daemon=True)
        self.podman, self.project, self.stop = podman, project, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(2):
            try:
                ids = self.podman.run("ps", "-q", "--filter",
                                      f"label=com.docker.compose.project={self.project}",
                                      check=False, timeout=60).stdout.decode().split()
                for cid in ids:
                    self.podman.run("healthcheck", "run", cid, check=False, timeout=60)
            except subprocess.TimeoutExpired:
                continue


@pytest.fixture(scope="module")
def engine(tmp_path_factory, request):
    shared = Podman(tmp_path_factory.mktemp("podman-shared"))
    try:
        shared.check_usable()
    except EngineUnavailable as exc:
        pytest.skip(f"podman cannot start on this machine, so the compose stack cannot be run: {exc}")
    started = time.monotonic()
    built = ensure_standin_images(shared)
    say(request.config, f"stand-in base images: {'built ' + ', '.join(built) if built else 'cached'}"
                        f" in {time.monotonic() - started:.0f} s")
    podman = Podman(tmp_path_factory.mktemp("podman"), own_storage=True)
    podman.start_service()
    try:
        yield podman
    finally:
        podman.stop_service()
        podman.remove_own_storage()


@pytest.fixture(scope="module")
def stack(engine, request):
    project = f"pcbsmoke{os.getpid()}"
    running = Stack(engine, project, {}, free_port(), free_port(), free_port(), free_port(), free_port())
    running.env = {
        "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"),
        "DOCKER_HOST": engine.docker_host, "DOCKER_BUILDKIT": "0",  # no buildx here
        "SMOKE_TAG": project, "SMOKE_HTTP_PORT": str(running.http),
        "SMOKE_HTTPS_PORT": str(running.https), "SMOKE_LOKI_PORT": str(running.loki),
        "SMOKE_PROMETHEUS_PORT": str(running.prometheus), "SMOKE_ALERTMANAGER_PORT": str(running.alertmanager),
        # compose checks it is set; Grafana itself is not started
        "GRAFANA_ADMIN_PASSWORD": "unused-grafana-is-not-started",
        **ROTATION,
    }
    health = HealthDriver(engine, project)
    health.start()
    try:
        started = time.monotonic()
        running.compose("build", timeout=2400)  # this run's own storage: nothing cached
        built = time.monotonic()
        running.compose("up", "-d", timeout=600)
        wait_until(running.ready, 120, "readyz through NGINX", interval=1)
        say(request.config, f"project images built in {built - started:.0f} s,"
                            f" stack up and ready in {time.monotonic() - built:.0f} s")
        yield running
    finally:
        health.stop.set()
        cleanup(running)
        health.join(10)


def cleanup(running: Stack) -> None:
    """Everything this project created, by name or label: containers, volumes, network,
    the images it built. The cached stand-in base images stay."""
    try:
        running.compose("down", "--volumes", "--remove-orphans", timeout=300)
    except (AssertionError, subprocess.TimeoutExpired):
        pass
    label = f"label=com.docker.compose.project={running.project}"
    podman = running.podman
    for cid in podman.run("ps", "-aq", "--filter", label, check=False).stdout.decode().split():
        podman.run("rm", "-f", cid, check=False)
    for name in podman.run("volume", "ls", "-q", "--filter", label, check=False).stdout.decode().split():
        podman.run("volume", "rm", "-f", name, check=False)
    for name in podman.run("network", "ls", "-q", "--filter", label, check=False).stdout.decode().split():
        podman.run("network", "rm", "-f", name, check=False)
    for image in ("pcbuilder-nginx", "pcbuilder-app", "pcbuilder-loki-standin"):
        podman.run("rmi", "-f", f"localhost/{image}:{running.project}", check=False)
    podman.run("image", "prune", "-f", "--filter", f"label=com.docker.compose.project={running.project}",
               check=False)


def load(stack: Stack, prefix: str, stop: threading.Event, outcomes: list, limit: int = 3000) -> None:
    """Sequential GETs, one after another, until stopped (bounded by ``limit``)."""
    for n in range(limit):
        if stop.is_set():
            return
        rid = f"{prefix}-{n:05d}"
        try:
            outcomes.append((rid, stack.get(f"{BASE}/main", rid)[0]))
        except OSError as exc:
            outcomes.append((rid, repr(exc)))


def explain(stack: Stack, failed: list) -> str:
    """For a failure message: NGINX's lines of the failed requests and its error log's end."""
    lines = nginx_lines(stack, [rid for rid, _ in failed])
    errors = sorted(stack.volume("logs").glob("nginx/error.log*"))
    tail = errors[0].read_text(errors="replace").splitlines()[-15:] if errors else []
    return "\n".join([f"failed: {failed}", *map(json.dumps, lines), "error.log:", *tail])


def nginx_lines(stack: Stack, ids) -> list[dict]:
    wanted = set(ids)
    return [r for r in stack.records(LAYERS["nginx"][0])[0]
            if r.get("event") == "nginx.access" and r.get("request_id") in wanted]


def load_lines(stack: Stack, outcomes: list) -> list[dict]:
    """NGINX's line of every request of a load, once all are written."""
    return wait_until(lambda: (lambda got: got if len(got) == len(outcomes) else None)(
        nginx_lines(stack, [rid for rid, _ in outcomes])), 30, "NGINX lines of the load")


def uwsgi_instances_serving(stack: Stack, ids) -> set[str]:
    wanted = set(ids)
    return {r["instance"] for r in stack.records(LAYERS["uwsgi"][0])[0]
            if r.get("event") == "uwsgi.request" and r.get("request_id") in wanted}


# ---------------------------------------------------------------------------- tests


def test_pages_static_files_https_and_one_id_through_every_layer(stack):
    assert stack.get(f"{BASE}/main", "smoke-main-00001")[0] == 200
    status, _, body = stack.get(f"{BASE}/table", "smoke-table-00001")
    assert status == 200 and body.decode().count('class="component-row"') == 58
    status, headers, _ = stack.get(f"{BASE}/static/css/app.css")
    assert status == 200 and "max-age=2592000" in headers.get("Cache-Control", "")
    status, headers, _ = stack.get(f"{BASE}/main", "smoke-https-00001", https=True)
    assert status == 200 and headers.get("Strict-Transport-Security")

    rid = "smoke-table-00001"
    for layer in LAYERS:
        wait_until(lambda: stack.layer_lines(layer, rid), 30, f"{rid} in the {layer} files", interval=0.5)
    wait_until(lambda: [line for line in stack.pushed() if line.get("request_id") == rid], 30,
               f"{rid} at the stand-in Loki push endpoint", interval=0.5)


def test_stand_ins_run_compose_own_loki_check_and_the_pinned_nginx_line(stack, request):
    """The Loki stand-in is healthy by compose's own check (`/usr/bin/loki -health`, exec
    form), which the app waited for; the NGINX stand-in is on the pinned image's stable line,
    and says which release it really is."""
    loki = stack.inspect(stack.containers("loki")[0]["Id"])
    compose_check = yaml.safe_load((ROOT / "docker-compose.yml").read_text())[
        "services"]["loki"]["healthcheck"]["test"]
    assert loki["Config"]["Healthcheck"]["Test"] == compose_check
    assert loki["State"]["Health"]["Status"] == "healthy"
    nginx = stack.containers("nginx")[0]["Id"]
    version = stack.podman.run("exec", nginx, "nginx", "-v").stderr.decode().strip()
    release = version.rsplit("/", 1)[-1]
    say(request.config, f"NGINX stand-in: {version} for {PINNED['nginx']}")
    assert release.split(".")[:2] == tag_of("nginx").split(".")[:2], (version, PINNED["nginx"])


def test_prometheus_and_alertmanager_run_the_project_files(stack, request):
    """Compose's Prometheus rendered and loaded every rule group of observability/prometheus/rules
    and sends to compose's Alertmanager, which runs the rendered alertmanager.yml.template;
    both are healthy by compose's own checks. (Stand-ins: Debian's 2.42 and 0.25 for the
    pinned images; what the rules do is proven in the real tier.)"""
    for service in ("prometheus", "alertmanager"):
        state = stack.inspect(stack.containers(service)[0]["Id"])["State"]
        assert state["Health"]["Status"] == "healthy", (service, state)
    files = sorted((ROOT / "observability/prometheus/rules").glob("*.yaml.template"))
    assert files, "no Prometheus rule files"
    want = {g["name"] for f in files for g in yaml.safe_load(f.read_text())["groups"]}
    loaded = {g["name"] for g in stack.api(stack.prometheus, "/api/v1/rules")["data"]["groups"]}
    assert loaded == want
    senders = wait_until(lambda: stack.api(stack.prometheus, "/api/v1/alertmanagers")["data"]["activeAlertmanagers"],
                         60, "Prometheus discovering the Alertmanager")
    assert [a["url"].split("//")[1].split("/")[0] for a in senders] == ["alertmanager:9093"], senders
    status = stack.api(stack.alertmanager, "/api/v2/status")
    template = yaml.safe_load((ROOT / "observability/alertmanager/alertmanager.yml.template").read_text())
    loaded_config = yaml.safe_load(status["config"]["original"])
    assert {r["name"] for r in loaded_config["receivers"]} == {r["name"] for r in template["receivers"]}
    assert loaded_config["route"]["receiver"] == "keep"  # no ALERT_WEBHOOK_URL here
    say(request.config, f"Prometheus stand-in {stack.api(stack.prometheus, '/api/v1/status/buildinfo')['data']['version']}"
                        f" for {PINNED['prometheus']}, Alertmanager stand-in {status['versionInfo']['version']}"
                        f" for {PINNED['alertmanager']}: {len(loaded)} rule groups loaded")


def test_scale_up_new_replica_gets_traffic_without_restarting_nginx(stack):
    nginx_before = stack.inspect(stack.containers("nginx")[0]["Id"])
    stack.compose("up", "-d", "--no-recreate", "--scale", "app=3")
    assert len(stack.containers("app")) == 3
    ids: list[str] = []

    def three_serve():
        for _ in range(10):
            rid = f"scale-up-{len(ids):05d}"
            ids.append(rid)
            assert stack.get(f"{BASE}/main", rid)[0] == 200
        return len(uwsgi_instances_serving(stack, ids)) == 3

    wait_until(three_serve, 60, "all three replicas serving", interval=0.5)
    upstreams = {r["upstream_addr"] for r in nginx_lines(stack, ids)}
    assert len(upstreams) == 3, upstreams
    nginx_after = stack.inspect(stack.containers("nginx")[0]["Id"])
    for key in ("Id", "Created"):
        assert nginx_after[key] == nginx_before[key], key
    assert nginx_after["State"]["StartedAt"] == nginx_before["State"]["StartedAt"]
    assert nginx_after["State"]["Pid"] == nginx_before["State"]["Pid"]


def test_scale_down_fails_no_request_waits_on_none_and_traffic_leaves_the_removed_replica(stack, request):
    removed = stack.containers("app")[-1]
    removed_ip = next(iter(stack.inspect(removed["Id"])["NetworkSettings"]["Networks"].values()))["IPAddress"]
    stop, outcomes = threading.Event(), []
    loader = threading.Thread(target=load, args=(stack, "scale-down", stop, outcomes))
    loader.start()
    try:
        wait_until(lambda: len(outcomes) >= 20, 60, "load before scaling down")
        stack.compose("up", "-d", "--no-recreate", "--scale", "app=2")
        done = len(outcomes)
        # go on well past NGINX's next resolution (it keeps an answer for 1 s)
        wait_until(lambda: len(outcomes) >= done + 200, 120, "load after scaling down")
    finally:
        stop.set()
        loader.join()
    assert len(stack.containers("app")) == 2
    failed = [o for o in outcomes if o[1] != 200]
    assert failed == [], explain(stack, failed)
    lines = load_lines(stack, outcomes)
    lines.sort(key=lambda r: r["request_id"])
    on_removed = [r for r in lines if removed_ip + ":" in r["upstream_addr"]]
    retried = [r for r in on_removed if "," in r["upstream_status"]]
    # a request that met the stopping replica was passed on to a live one ...
    for r in retried:
        assert r["upstream_status"].endswith("200") and removed_ip not in r["upstream_addr"].split(", ")[-1], r
    # ... without waiting on it ...
    assert_none_waited(failed_attempts(lines, lambda addr: addr.startswith(removed_ip + ":")))
    # ... and once the replica is gone and NGINX has re-resolved, none goes there
    assert not [r for r in lines[-100:] if removed_ip + ":" in r["upstream_addr"]]
    say(request.config, f"scale-down: {len(lines)} sequential requests, {len(retried)} met the"
                        " stopping replica and were retried: " + "; ".join(
                            f"{r['upstream_status']} in {r['request_time']} s" for r in retried))


def test_stopping_one_replica_under_sequential_load_fails_and_delays_no_request(stack, request):
    victim = stack.containers("app")[0]
    victim_ip = next(iter(stack.inspect(victim["Id"])["NetworkSettings"]["Networks"].values()))["IPAddress"]
    stop, outcomes = threading.Event(), []
    loader = threading.Thread(target=load, args=(stack, "stop-one", stop, outcomes))
    loader.start()
    try:
        wait_until(lambda: len(outcomes) >= 20, 60, "load before stopping a replica")
        # the engine's stop: the container's own stop signal and grace period (compose file)
        stack.podman.run("stop", victim["Id"], timeout=120)
        count = len(outcomes)
        wait_until(lambda: len(outcomes) >= count + 50, 120, "load after the stop")
    finally:
        stop.set()
        loader.join()
    failed = [o for o in outcomes if o[1] != 200]
    assert failed == [], explain(stack, failed)
    lines = load_lines(stack, outcomes)
    met = failed_attempts(lines, lambda addr: addr.startswith(victim_ip + ":"))
    assert_none_waited(met)
    say(request.config, f"stop-one: {len(lines)} sequential requests, {len(met)} met the"
                        " stopping replica and were retried: " + "; ".join(
                            f"{r['upstream_status']} in {r['request_time']} s" for r, _, _ in met))
    state = stack.inspect(victim["Id"])["State"]
    assert state["ExitCode"] == 0 and not state.get("OOMKilled"), state  # 137 would be a kill
    host = stack.inspect(victim["Id"])["Config"]["Hostname"]
    server = [r.get("msg", "") for r in stack.records(f"uwsgi/{host}.log*")[0] if r.get("event") == "uwsgi.server"]
    assert "goodbye to uWSGI." in server, "uWSGI did not shut down gracefully"
    stack.podman.run("start", victim["Id"])
    wait_until(stack.ready, 60, "ready again", interval=1)


def test_rotation_under_load_loses_and_duplicates_nothing(stack):
    """The rotator runs in the nginx container; uWSGI and the app, in other containers,
    switch files by themselves. Every id this module sent is in the volume's NGINX and app
    files exactly once (this phase's also in uWSGI's), and at the push endpoint once."""
    stop, outcomes = threading.Event(), []
    loaders = [threading.Thread(target=load, args=(stack, f"rotate-{i}", stop, outcomes, 1500))
               for i in range(4)]
    for t in loaders:
        t.start()
    try:
        wait_until(lambda: all(stack.records(LAYERS[layer][0])[2] >= 3 for layer in LAYERS), 300,
                   "every layer's files rotated three times under load", interval=1)
    finally:
        stop.set()
        for t in loaders:
            t.join()
    assert [o for o in outcomes if o[1] != 200] == []
    every = set(stack.sent)  # every earlier test asserted its requests succeeded
    # uWSGI drops the request lines still in its master's pipe when it exits (its exit
    # flush reads only the server-message pipe; main's config does the same): the ids of
    # the replicas stopped above may lack a uWSGI line, so uWSGI is held to this phase's.
    wanted_by_layer = {"nginx": every, "app": every, "uwsgi": {rid for rid, _ in outcomes}}

    def counts(layer: str) -> collections.Counter:
        pattern, event = LAYERS[layer]
        wanted = wanted_by_layer[layer]
        return collections.Counter(r.get("request_id") for r in stack.records(pattern)[0]
                                   if r.get("event") == event and r.get("request_id") in wanted)

    for layer in LAYERS:
        wanted = wanted_by_layer[layer]
        found = counts(layer)
        deadline = time.monotonic() + 60  # the app's last lines wait for its next write check
        while not set(found) >= wanted and time.monotonic() < deadline:
            time.sleep(1)
            found = counts(layer)
        missing = sorted(wanted - set(found))
        assert missing == [], f"{layer}: {len(missing)} ids missing, e.g. {missing[:10]}"
        assert {rid: n for rid, n in found.items() if n != 1} == {}, f"{layer}: not exactly once"
        other = stack.records(LAYERS[layer][0])[1]
        assert [line for line in other if not (layer == "uwsgi" and UWSGI_OWN_LINE.match(line))] == []
    pushed = wait_until(lambda: (lambda c: c if set(c) >= every else None)(collections.Counter(
        line.get("request_id") for line in stack.pushed()
        if line.get("event") == "request.finished" and line.get("request_id") in every)), 60,
        "every id at the push endpoint", interval=1)
    assert {rid: n for rid, n in pushed.items() if n != 1} == {}


def test_prometheus_alerts_reach_alertmanager_over_the_compose_network(stack):
    """The always-firing Watchdog (rules/pipeline.yaml.template) as Alertmanager holds it:
    Prometheus evaluated the rendered rules and sent to `alertmanager:9093`. (It runs after
    the tests above, so Prometheus has evaluated its rules several times by now.)"""
    def watchdog():
        alerts = stack.api(stack.alertmanager, "/api/v2/alerts?filter=alertname%3D%22Watchdog%22")
        return alerts or None

    (alert,) = wait_until(watchdog, 120, "the Watchdog alert in Alertmanager", interval=2)
    assert alert["labels"]["severity"] == "none" and alert["status"]["state"] == "active"
    assert alert["annotations"]["runbook"].endswith("#watchdog")
    assert alert["receivers"] == [{"name": "keep"}]


def test_stop_is_graceful_and_down_then_up_keeps_the_volumes(stack):
    expected = {"nginx": ("SIGQUIT", 40), "app": ("SIGTERM", 40), "loki": ("SIGTERM", 30),
                "prometheus": ("SIGTERM", 30), "alertmanager": ("SIGTERM", 30)}
    cert = hashlib.sha256((stack.volume("tls") / "cert.pem").read_bytes()).hexdigest()
    ids = {svc: [c["Id"] for c in stack.containers(svc)] for svc in expected}
    stack.compose("stop")
    for svc, (signal_name, grace) in expected.items():
        for cid in ids[svc]:
            info = stack.inspect(cid)
            assert info["Config"]["StopTimeout"] == grace, (svc, info["Config"]["StopTimeout"])
            assert str(info["Config"]["StopSignal"]) in (signal_name, str(int(getattr(signal, signal_name)))), svc
            assert info["State"]["ExitCode"] == 0, (svc, info["State"])  # 137: killed, not drained

    stack.compose("down")
    stack.compose("up", "-d", timeout=600)
    wait_until(stack.ready, 120, "ready after down + up", interval=1)
    assert hashlib.sha256((stack.volume("tls") / "cert.pem").read_bytes()).hexdigest() == cert
    # the logs and the database survived; the stack still answers and logs
    assert stack.layer_lines("nginx", "smoke-table-00001")
    status, _, body = stack.get(f"{BASE}/table", "smoke-after-up-00001")
    assert status == 200 and body.decode().count('class="component-row"') == 58
    wait_until(lambda: stack.layer_lines("uwsgi", "smoke-after-up-00001"), 30, "a line after up")
