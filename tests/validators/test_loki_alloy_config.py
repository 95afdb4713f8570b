"""Loki and Alloy configuration: parse, and key settings are present.

There is no Loki or Alloy binary here, so:
- loki.yaml is parsed as YAML after expanding ${VAR:-default} the way
  `loki -config.expand-env=true` does;
- config.alloy (compose, ./stack) and kubernetes.alloy (the Helm chart) are checked
  with a small block parser (comments, strings and braces aware) -- enough to find
  blocks, their bodies and references, not a full Alloy syntax check. Both use the
  parsing stages of config.alloy's "pc-builder shared stages" block (a `declare`).
"""
from __future__ import annotations

import re

import pytest
import yaml

from tests.support.config_text import ENV_REF, expand_env, shared_block
from tests.support.tools import REPO_ROOT

LOKI_CONFIG = REPO_ROOT / "observability/loki/loki.yaml"
ALLOY_CONFIG = REPO_ROOT / "observability/alloy/config.alloy"


# ------------------------------------------------------------------- Loki

def loki(env: dict[str, str] | None = None) -> dict:
    return yaml.safe_load(expand_env(LOKI_CONFIG.read_text(), env or {}))


def _duration_hours(value: str) -> float:
    units = {"h": 1, "d": 24, "w": 168, "m": 1 / 60}
    parts = re.findall(r"(\d+)([hdwm])", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"not a simple duration: {value}"
    return sum(int(n) * units[u] for n, u in parts)


def test_loki_env_refs_have_defaults():
    refs = ENV_REF.findall(LOKI_CONFIG.read_text())
    assert refs, "expected env-driven settings (retention)"
    for name, default in refs:
        assert default, f"${{{name}}} has no default: Loki would get an empty value"
    assert "$" not in ENV_REF.sub("", LOKI_CONFIG.read_text()), "unsupported $ reference form"


def test_loki_core_settings():
    cfg = loki()
    assert cfg.get("target", "all") == "all"
    assert cfg["auth_enabled"] is False
    assert cfg["common"]["replication_factor"] == 1
    assert cfg["common"]["ring"]["kvstore"]["store"] == "inmemory"
    assert cfg["common"]["path_prefix"] == "/loki"
    fs = cfg["common"]["storage"]["filesystem"]
    assert fs["chunks_directory"].startswith("/loki/") and fs["rules_directory"].startswith("/loki/")
    assert cfg["analytics"]["reporting_enabled"] is False


def test_loki_schema_tsdb_v13():
    configs = loki()["schema_config"]["configs"]
    latest = configs[-1]
    assert latest["store"] == "tsdb"
    assert latest["schema"] == "v13"
    assert latest["object_store"] == "filesystem"
    assert latest["index"]["period"] == "24h"


def test_loki_structured_metadata_and_retention():
    cfg = loki()
    limits = cfg["limits_config"]
    assert limits["allow_structured_metadata"] is True
    assert _duration_hours(limits["retention_period"]) == 168
    compactor = cfg["compactor"]
    assert compactor["retention_enabled"] is True
    assert compactor["delete_request_store"] == "filesystem"
    assert compactor["working_directory"].startswith("/loki")


def test_loki_retention_follows_env():
    assert loki({"LOKI_RETENTION": "720h"})["limits_config"]["retention_period"] == "720h"


def test_duration_parser_rejects_garbage():
    with pytest.raises(AssertionError):
        _duration_hours("${LOKI_RETENTION:-168h}")


# ------------------------------------------------------------------ Alloy


def strip_comments(src: str) -> str:
    """Remove // and /* */ comments outside string literals, keeping offsets' lines."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c == '"' or c == "`":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if (c == '"' and src[j] == "\\") else 1
            out.append(src[i : j + 1])
            i = j + 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            assert j >= 0, "unterminated block comment"
            out.append("\n" * src.count("\n", i, j))
            i = j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def bracket_depths(src: str, start: int = 0):
    """Yield (offset, depth after it) for every bracket outside string literals."""
    depth, i = 0, start
    while i < len(src):
        c = src[i]
        if c == '"':
            i += 1
            while src[i] != '"':
                i += 2 if src[i] == "\\" else 1
        elif c in "{[(":
            depth += 1
            yield i, depth
        elif c in "}])":
            depth -= 1
            yield i, depth
        i += 1


def matching_brace(src: str, open_at: int) -> int:
    for i, depth in bracket_depths(src, open_at):
        if depth == 0:
            return i
    raise AssertionError(f"unbalanced brace opened at offset {open_at}")


_BLOCK = re.compile(r'(?m)^\s*([a-z_][\w.]*)\s*(?:"([^"]*)")?\s*\{')


def blocks(src: str, depth_limit: int = 0) -> list[tuple[str, str | None, str]]:
    """Top-level blocks (name, label, body) of an Alloy source without comments."""
    found, pos = [], 0
    while True:
        m = _BLOCK.search(src, pos)
        if not m:
            return found
        end = matching_brace(src, m.end() - 1)
        found.append((m.group(1), m.group(2), src[m.end() : end]))
        pos = end + 1


def inner_blocks(body: str, name: str) -> list[str]:
    return [b for n, _, b in blocks(body) if n == name]


def map_keys(body: str, attr: str) -> set[str]:
    m = re.search(rf"\b{attr}\s*=\s*\{{", body)
    assert m, f"no `{attr} = {{...}}` in block"
    inner = body[m.end() : matching_brace(body, m.end() - 1)]
    return set(re.findall(r'(?m)^\s*"?([\w.]+)"?\s*=', inner))


SHARED_BEGIN = "// >>> pc-builder shared stages"
SHARED_END = "// <<< pc-builder shared stages"
K8S_CONFIG = REPO_ROOT / "observability/alloy/kubernetes.alloy"


def all_blocks(src: str, scope: tuple = ()) -> list[tuple[tuple, str, str | None, str]]:
    """Every block at any depth: (enclosing block names, name, label, body)."""
    found = []
    for name, label, body in blocks(src):
        found.append((scope, name, label, body))
        found += all_blocks(body, (*scope, name))
    return found


@pytest.fixture(scope="module")
def alloy_src() -> str:
    return strip_comments(ALLOY_CONFIG.read_text())


@pytest.fixture(scope="module")
def alloy_blocks(alloy_src):
    return blocks(alloy_src)


@pytest.fixture(scope="module")
def shared_src() -> str:
    return strip_comments(shared_block(ALLOY_CONFIG.read_text()))


@pytest.fixture(scope="module")
def k8s_src() -> str:
    return strip_comments(K8S_CONFIG.read_text())


@pytest.mark.parametrize("path", [ALLOY_CONFIG, K8S_CONFIG], ids=["compose", "kubernetes"])
def test_alloy_braces_balanced(path):
    depth = 0
    for i, depth in bracket_depths(strip_comments(path.read_text())):
        assert depth >= 0, f"unbalanced closing bracket at offset {i}"
    assert depth == 0


_REF = re.compile(r"\b((?:local\.file_match|loki\.process|loki\.write|loki\.source\.file|discovery\.kubernetes"
                  r"|discovery\.relabel)|(?:pcbuilder\.)?pcbuilder_layers)\.(\w+)\.(targets|receiver|output)\b")


def _check_references(src: str, defined: set[tuple[str, str]]) -> None:
    refs = _REF.findall(src)
    assert refs
    for comp, label, _ in refs:
        assert (comp, label) in defined, f"reference to undefined component {comp} \"{label}\""
    for comp, label in defined:  # every component's output is consumed (no dangling pipeline)
        if comp not in {"loki.write", "loki.source.file", "declare", "import.file", "logging"}:
            assert re.search(rf"\b{re.escape(comp)}\.{label}\.(targets|receiver|output)\b", src), f"{comp} {label} unused"


def test_alloy_components_and_references(alloy_src, shared_src):
    top = {(n, l) for n, l, _ in blocks(alloy_src)}
    assert {"local.file_match", "loki.source.file", "loki.process", "loki.write", "declare",
            "pcbuilder_layers"} <= {n for n, _ in top}
    _check_references(alloy_src.replace(shared_src, ""), top)
    (declare_body,) = [b for n, l, b in blocks(shared_src) if (n, l) == ("declare", "pcbuilder_layers")]
    inner = {(n, l) for n, l, _ in blocks(declare_body)}
    assert ("loki.process", "layers") in inner
    assert re.search(r'export "receiver"\s*\{\s*value\s*=\s*loki\.process\.layers\.receiver', declare_body)
    assert "forward_to = argument.forward_to.value" in declare_body


def test_kubernetes_components_and_references(k8s_src):
    top = {(n, l) for n, l, _ in blocks(k8s_src)}
    assert ("import.file", "pcbuilder") in top and ("pcbuilder.pcbuilder_layers", "pods") in top
    defined = top | {("pcbuilder.pcbuilder_layers", "pods")}
    _check_references(k8s_src, defined)
    assert re.search(r'forward_to\s*=\s*\[pcbuilder\.pcbuilder_layers\.pods\.receiver\]', k8s_src)
    assert "stage.cri" in k8s_src


def test_shared_block_holds_only_declare_blocks(shared_src):
    """Alloy imports a module only if its top level is declare blocks."""
    assert [n for n, _, _ in blocks(shared_src)] == ["declare"]


def test_alloy_paths_and_urls_from_env(alloy_src, alloy_blocks):
    assert 'coalesce(sys.env("LOG_DIR"), "/var/log/stack")' in alloy_src
    assert 'coalesce(sys.env("LOKI_URL"), "http://loki:3100/loki/api/v1/push")' in alloy_src
    assert 'coalesce(sys.env("STACK_ENV"), "local")' in alloy_src
    globs = re.findall(r'"__path__"\s*=\s*string\.format\("%s(/[^"]+)"', alloy_src)
    assert sorted(globs) == ["/browser/*.log", "/nginx/access.log", "/uwsgi/*.log"], globs
    assert not re.search(r'"/var/log/stack/', alloy_src), "hard-coded log path (must come from LOG_DIR)"
    writes = [b for n, _, b in alloy_blocks if n == "loki.write"]
    assert writes and all("sys.env(\"LOKI_URL\")" in b for b in writes)


def _stages(src: str, stage: str) -> list[tuple[tuple, str]]:
    """(enclosing names, body) of every `stage` block, at any depth."""
    return [(scope, body) for scope, n, _, body in all_blocks(src) if n == stage]


def test_alloy_timestamps(shared_src):
    """Per layer, routed by the layer label (files in compose, containers in Kubernetes)."""
    stamps = {}
    for scope, name, _, body in all_blocks(shared_src):
        if name != "stage.match":
            continue
        layer = re.search(r'selector\s*=\s*"\{layer=\\"(\w+)\\"\}"', body).group(1)
        for ts in inner_blocks(body, "stage.timestamp"):
            src = re.search(r'source\s*=\s*"(\w+)"', ts).group(1)
            fmt = re.search(r'format\s*=\s*"(\w+)"', ts).group(1)
            stamps[(layer, src)] = fmt
    assert stamps == {("nginx", "msec"): "Unix", ("uwsgi", "start_us"): "UnixUs", ("uwsgi", "time_us"): "UnixUs",
                      ("browser", "time"): "RFC3339Nano", ("app", "time"): "RFC3339Nano"}
    assert not [s for s, _ in _stages(shared_src, "stage.timestamp") if "stage.match" not in s]


def _keys(src: str, stage: str, attr: str = "values") -> set[str]:
    keys: set[str] = set()
    for _, body in _stages(src, stage):
        keys |= map_keys(body, attr)
    return keys


def test_alloy_labels_low_cardinality(alloy_src, k8s_src):
    labels = _keys(alloy_src, "stage.labels") | _keys(alloy_src, "stage.static_labels")
    assert labels == {"service_name", "layer", "instance", "env"}, labels
    # Kubernetes adds no label of its own: container and pod only set defaults of the same two
    targets = set(re.findall(r'target_label\s*=\s*"(\w+)"', k8s_src))
    assert targets == {"__path__", "instance", "layer"}, targets
    assert not _keys(k8s_src, "stage.labels") and not _keys(k8s_src, "stage.static_labels")
    drops = [b for _, b in _stages(k8s_src, "stage.label_drop")]
    assert drops and '"stream"' in drops[0]


def test_alloy_request_id_is_structured_metadata(shared_src):
    sm = _keys(shared_src, "stage.structured_metadata")
    assert sm == {"request_id", "method", "status", "path"}, sm
    extracted = _keys(shared_src, "stage.json", "expressions")
    assert {"request_id", "layer", "instance", "msec", "start_us", "time_us", "time", "path"} <= extracted
    # `path` only for the app's lines, as the app's own shipper sends it (compose unchanged)
    for scope, body in _stages(shared_src, "stage.structured_metadata"):
        if "path" in map_keys(body, "values"):
            assert "stage.match" in scope


def test_the_chart_ships_the_same_shared_block():
    text = (REPO_ROOT / "deploy/helm/pc-builder/templates/_helpers.tpl").read_text()
    assert SHARED_BEGIN in text and SHARED_END in text


def test_alloy_does_not_tail_app_logs(alloy_src):
    # the app ships its own logs to Loki; tailing ${LOG_DIR}/app too would duplicate them
    assert "/app/" not in alloy_src


def test_alloy_parser_negative_control():
    """The checks above must be able to see request_id used as a label."""
    bad = strip_comments(
        'loki.process "x" {\n  forward_to = []\n  // stage.labels { values = { fake = "" } }\n'
        '  stage.labels {\n    values = {\n      request_id = "",\n      layer = "",\n    }\n  }\n}\n'
    )
    keys = _keys(bad, "stage.labels")
    assert keys == {"request_id", "layer"}
    with pytest.raises(AssertionError):
        blocks('loki.write "x" {\n  endpoint {\n    url = "a"\n}\n')
