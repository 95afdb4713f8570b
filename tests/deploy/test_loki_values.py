"""Loki in simple-scalable mode: the plain config (observability/loki/loki-scalable.yaml),
the values ./stack k8s render gives the official chart, and the capacity model they follow."""
from __future__ import annotations

import importlib.util
import re

import pytest
import yaml

from stackctl import k8s
from tests.support.config_text import ENV_REF, expand_env
from tests.support.tools import REPO_ROOT

CAPACITY = REPO_ROOT / "deploy" / "capacity.py"
SECRETS = {"LOKI_S3_ENDPOINT", "LOKI_S3_BUCKET", "LOKI_S3_ACCESS_KEY_ID", "LOKI_S3_SECRET_ACCESS_KEY"}


def capacity():
    spec = importlib.util.spec_from_file_location("capacity", CAPACITY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def config() -> dict:
    env = {name: f"<{name}>" for name in SECRETS}
    return yaml.safe_load(expand_env(k8s.LOKI_CONFIG.read_text(), env))


def test_secrets_and_bucket_come_from_the_environment_only():
    text = k8s.LOKI_CONFIG.read_text()
    refs = dict(ENV_REF.findall(text))
    assert SECRETS <= set(refs)
    for name in SECRETS:
        assert refs[name] == "", f"${{{name}}} must have no default"
    for name, default in refs.items():
        if name not in SECRETS:
            assert default, f"${{{name}}} has no default"
    assert not re.search(r"(?i)(secret_access_key|access_key_id):\s*[^$\s]", text)


def test_simple_scalable_on_object_storage(config):
    assert config["common"]["replication_factor"] == 3
    assert config["common"]["ring"]["kvstore"]["store"] == "memberlist"
    s3 = config["common"]["storage"]["s3"]
    assert s3["bucketnames"] == "<LOKI_S3_BUCKET>" and s3["endpoint"] == "<LOKI_S3_ENDPOINT>"
    latest = config["schema_config"]["configs"][-1]
    assert (latest["store"], latest["schema"], latest["object_store"]) == ("tsdb", "v13", "s3")
    assert "filesystem" not in yaml.safe_dump(config["common"]["storage"])
    assert config["ingester"]["chunk_encoding"] == "snappy"  # what CAPACITY.md measured


def test_retention_by_the_compactor(config):
    assert config["limits_config"]["retention_period"] == "720h"
    compactor = config["compactor"]
    assert compactor["retention_enabled"] is True and compactor["delete_request_store"] == "s3"


def test_same_labels_and_metadata_rules_as_compose(config):
    compose = yaml.safe_load(expand_env((REPO_ROOT / "observability/loki/loki.yaml").read_text(), {}))
    assert config["limits_config"]["allow_structured_metadata"] is True
    assert config["auth_enabled"] == compose["auth_enabled"] is False
    assert config["schema_config"]["configs"][-1]["index"] == compose["schema_config"]["configs"][-1]["index"]


def test_chart_values_carry_the_plain_config_unchanged():
    values = k8s.loki_values()
    plain = yaml.safe_load(k8s.LOKI_CONFIG.read_text())
    assert values["deploymentMode"] == "SimpleScalable"
    assert values["loki"]["structuredConfig"] == plain
    assert values["loki"]["schemaConfig"] == plain["schema_config"]
    assert values["loki"]["auth_enabled"] == plain["auth_enabled"]
    assert values["loki"]["storage"]["bucketNames"]["chunks"] == plain["common"]["storage"]["s3"]["bucketnames"]
    for target in ("write", "read", "backend"):
        assert values[target]["replicas"] == 3
        assert "-config.expand-env=true" in values[target]["extraArgs"]
        assert {"secretRef": {"name": "loki-s3"}} in values[target]["extraEnvFrom"]
    assert values["minio"]["enabled"] is False
    compose = (REPO_ROOT / "docker-compose.yml").read_text()
    assert f"grafana/loki:{values['loki']['image']['tag']}" in compose  # the version compose runs


def test_ingestion_limits_cover_the_chart_design_load():
    cap = capacity()
    import json
    bench = json.loads(cap.BENCH.read_text())
    volume = json.loads(cap.VOLUME.read_text())
    chart = yaml.safe_load(cap.CHART_VALUES.read_text())
    limits = cap._limits()
    model = cap.model(bench, volume, chart, limits)
    need = cap.required_limits(model, cap.design_load(chart, model))
    assert limits["ingestion_rate_mb"] >= need["ingestion_rate_mb"]
    assert limits["ingestion_burst_size_mb"] >= need["ingestion_burst_size_mb"]
    # sized, not unlimited: at most 4x what the design load needs
    assert limits["ingestion_rate_mb"] <= 4 * need["ingestion_rate_mb"]
    # the busiest stream at the design load stays under the per-stream limit
    assert model["nginx_pod_stream_rps"] * chart["nginx"]["replicas"] >= cap.design_load(chart, model)


def test_capacity_md_is_what_the_script_computes_from_bench_results():
    """deploy/CAPACITY.md is reproduced by deploy/capacity.py from bench/results/*.json."""
    cap = capacity()
    assert cap.OUT.read_text() == cap.build(), "run .venv/bin/python -m deploy.capacity"


def test_capacity_chunk_layout_compresses_what_it_is_given():
    """The compression measurement itself: repetitive lines shrink, random bytes do not."""
    import os

    import cramjam

    cap = capacity()
    snappy = lambda b: bytes(cramjam.snappy.compress(b))  # noqa: E731
    same = [b'{"layer":"nginx","status":200}'] * 2000
    assert cap.chunk_bytes(same, list(range(2000)), snappy) < sum(map(len, same)) / 5
    noise = [os.urandom(64) for _ in range(2000)]
    assert cap.chunk_bytes(noise, list(range(2000)), snappy) > sum(map(len, noise))


def test_measure_files_counts_the_traffic_lines_only(tmp_path):
    """The log-volume measurement on a small log folder: lines before `since` are start-up."""
    cap = capacity()
    import json as _json
    (tmp_path / "nginx").mkdir()
    (tmp_path / "uwsgi").mkdir()
    (tmp_path / "app").mkdir()
    nginx = [{"msec": 10.0, "request_id": "r0", "method": "GET", "status": 200},
             {"msec": 20.5, "request_id": "r1", "method": "GET", "status": 200}]
    uwsgi = [{"start_us": 20_400_000, "request_id": "r1", "method": "GET", "status": 200}]
    app = [{"time": "1970-01-01T00:00:20.450000+00:00", "request_id": "r1", "method": "GET",
            "status": 200, "path": "/x"}]
    (tmp_path / "nginx/access.log").write_text("".join(_json.dumps(r) + "\n" for r in nginx))
    (tmp_path / "uwsgi/a.log").write_text("".join(_json.dumps(r) + "\n" for r in uwsgi))
    (tmp_path / "app/a.log").write_text("".join(_json.dumps(r) + "\n" for r in app))
    result = cap.measure_files(tmp_path, requests=1, since_ns=20 * 10**9)["layers"]
    assert {layer: m["lines"] for layer, m in result.items()} == {"nginx": 1, "uwsgi": 1, "app": 1}
    assert result["nginx"]["bytes"] == len(_json.dumps(nginx[1])) + 1
    assert result["app"]["metadata_bytes"] == len("request_id" "r1" "method" "GET" "status" "200" "path" "/x")
    assert all(m["compressed_bytes"]["snappy"] > 0 for m in result.values())
