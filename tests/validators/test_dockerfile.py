"""The app Dockerfile lints clean with hadolint and keeps its contract."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.support.tools import REPO_ROOT, require_tool

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"


def hadolint(path) -> tuple[int, list[dict]]:
    exe = require_tool("hadolint")
    res = subprocess.run([exe, "--no-color", "--format", "json", str(path)], capture_output=True, text=True)
    try:
        findings = json.loads(res.stdout or "null")
    except json.JSONDecodeError:
        pytest.fail(f"hadolint did not print JSON: {res.stdout!r} {res.stderr!r}")
    assert isinstance(findings, list), findings
    return res.returncode, findings


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line:
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages(text: str) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions(text):
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


@pytest.fixture(scope="module")
def text() -> str:
    return DOCKERFILE.read_text()


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, REPO_ROOT / "nginx" / "Dockerfile"],
                         ids=["app", "nginx"])
def test_hadolint_clean(dockerfile):
    code, findings = hadolint(dockerfile)
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert code == 0


def test_hadolint_detects_problems(tmp_path):
    """Negative control: the same invocation reports a known-bad Dockerfile."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y gcc\nRUN pip install flask\n")
    code, findings = hadolint(bad)
    codes = {f["code"] for f in findings}
    assert {"DL3007", "DL3008", "DL3013"} <= codes, codes
    assert code != 0


def test_multi_stage_without_compilers_at_runtime(text):
    st = stages(text)
    assert len(st) >= 2, "expected a build stage and a runtime stage"
    build_runs = " ".join(a for i, a in st[0] if i == "RUN")
    runtime_runs = " ".join(a for i, a in st[-1] if i == "RUN")
    assert "gcc" in build_runs
    assert not re.search(r"\b(gcc|g\+\+|build-essential|clang|make)\b", runtime_runs), runtime_runs
    assert "apt-get install" not in runtime_runs


def test_base_image_pinned(text):
    arg_defaults = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.M))
    for ins, args in instructions(text):
        if ins != "FROM":
            continue
        image = args.split()[0]
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: arg_defaults.get(m.group(1), m.group(0)), image)
        if image in {s.split()[-1] for s in re.findall(r"^FROM .+ AS (\w+)", text, re.M | re.I)}:
            continue  # FROM <earlier stage>
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", image), f"base image not pinned: {image}"


def test_runtime_user_is_not_root(text):
    final = stages(text)[-1]
    users = [a for i, a in final if i == "USER"]
    assert users, "final stage has no USER instruction"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    created = re.search(r"useradd\b.*?--uid\s+(\d+).*?\s(app)\b", " ".join(a for i, a in final if i == "RUN"))
    assert created, "user `app` is not created with a fixed uid"
    assert user in {created.group(1), "app"}, f"USER {user} is not the app user"


def test_runtime_contract(text):
    final = stages(text)[-1]
    joined = "\n".join(f"{i} {a}" for i, a in final)
    assert re.search(r"^COPY .*requirements\.txt", joined, re.M)
    assert re.search(r"pip install --no-cache-dir", joined)
    assert re.search(r"^COPY .*service/ /app/service/?$", joined, re.M)
    assert re.search(r"^WORKDIR /app/service$", joined, re.M)
    assert re.search(r"^EXPOSE 3031$", joined, re.M)
    for path in ("/var/log/stack/uwsgi", "/var/log/stack/app", "/var/lib/pcbuilder"):
        assert path in joined, path
    assert re.search(r"chown\s+-R\s+app:app\s+/var/log/stack\s+/var/lib/pcbuilder", joined)
    env = " ".join(a for i, a in final if i == "ENV")
    for pair in ("PYTHONUNBUFFERED=1", "LOG_DIR=/var/log/stack", "DATA_DIR=/var/lib/pcbuilder",
                 "UWSGI_SOCKET=0.0.0.0:3031"):
        assert pair in env, pair
    health = [a for i, a in final if i == "HEALTHCHECK"]
    assert health and '"python", "-m", "pcbuilder.healthcheck"' in health[-1]
    cmd = [a for i, a in final if i == "CMD"]
    assert cmd and json.loads(cmd[-1]) == ["uwsgi", "--ini", "/app/service/uwsgi.ini"]


@pytest.mark.parametrize("path", ["requirements.txt", "service/uwsgi.ini", "service/pcbuilder/healthcheck.py"])
def test_files_the_image_needs_exist(path):
    assert (REPO_ROOT / path).is_file(), f"the Dockerfile/compose rely on {path}"


def test_requirements_pin_uwsgi():
    path = REPO_ROOT / "requirements.txt"
    assert path.is_file(), "requirements.txt is missing"
    reqs = path.read_text()
    assert re.search(r"^uWSGI==\d+\.\d+\.\d+", reqs, re.M | re.I)


def test_dockerignore_allow_list():
    lines = [l.strip() for l in DOCKERIGNORE.read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert lines[0] == "*", "expected an allow-list .dockerignore starting with *"
    allowed = {l[1:].rstrip("/") for l in lines if l.startswith("!")}
    assert allowed == {"requirements.txt", "service"}, allowed
