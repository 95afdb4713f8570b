"""deploy/helm/pc-builder: lint, render, validate against Kubernetes' OpenAPI schemas, and
check what the issue asks of every workload (tests on the rendered output, no cluster)."""
from __future__ import annotations

import json

import kubernetes_validate
import pytest

from stackctl import k8s
from tests.support.chart import PRODUCTION, by_kind, one, render
from tests.support.tools import require_tool

WORKLOADS = ("Deployment",)


def pod_specs(docs):
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in by_kind(docs, "Deployment")]


def all_containers(spec):
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize("values", [[], [PRODUCTION]], ids=["default", "production"])
def test_helm_lint_passes(values):
    args = ["lint", str(k8s.CHART), "--strict", "--kube-version", k8s.KUBE_VERSION]
    for v in values:
        args += ["--values", str(v)]
    out = k8s.helm(*args)
    assert "0 chart(s) failed" in out


def test_every_manifest_validates_against_the_pinned_kubernetes_schemas(docs):
    kinds = set()
    for doc in docs:
        # strict: an unknown field (a typo) is an error, not silently dropped by the API server
        version = kubernetes_validate.validate(doc, k8s.KUBE_VERSION, strict=True)
        assert version == ".".join(k8s.KUBE_VERSION.split(".")[:2])
        kinds.add(doc["kind"])
    assert {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "NetworkPolicy"} <= kinds


def test_the_validator_rejects_a_broken_manifest(default_docs):
    """Negative control: the schema check above can fail."""
    broken = json.loads(json.dumps(one(default_docs, "Deployment", "-app")))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = ["Always"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, k8s.KUBE_VERSION, strict=True)
    typo = json.loads(json.dumps(one(default_docs, "Service", "-app")))
    typo["spec"]["selectr"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, k8s.KUBE_VERSION, strict=True)


def test_every_container_is_non_root_with_a_read_only_root_filesystem(docs):
    specs = pod_specs(docs)
    assert len(specs) == 2
    for name, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for c in all_containers(spec):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], (name, c["name"])
            assert sc.get("runAsUser", pod["runAsUser"]) != 0 and not sc.get("privileged"), (name, c["name"])


def test_every_deployment_has_readiness_and_liveness_probes(docs):
    for name, spec in pod_specs(docs):
        for c in spec["containers"]:
            assert c.get("readinessProbe") and c.get("livenessProbe"), (name, c["name"])
    app = one(docs, "Deployment", "-app")["spec"]["template"]["spec"]["containers"][0]
    # the app speaks only uwsgi: its own health check client, readyz and healthz
    assert app["readinessProbe"]["exec"]["command"][-3:] == ["pcbuilder.healthcheck", "127.0.0.1:3031",
                                                             "/pc-builder-app/readyz"]
    assert app["livenessProbe"]["exec"]["command"][-1] == "/pc-builder-app/healthz"
    nginx = one(docs, "Deployment", "-nginx")["spec"]["template"]["spec"]["containers"][0]
    # asked from 127.0.0.1 inside the pod: the template answers the machine's own probes
    # whatever basic authentication and the HTTPS redirect say (compose's healthcheck too)
    assert nginx["readinessProbe"]["exec"]["command"] == [
        "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/pc-builder-app/readyz"]
    # liveness never depends on the app: a slow app must not restart NGINX
    assert nginx["livenessProbe"]["tcpSocket"]["port"] == "http"


def test_no_image_is_latest_or_untagged(docs):
    for name, spec in pod_specs(docs):
        for c in all_containers(spec):
            image = c["image"]
            repo, _, tag = image.rpartition(":")
            assert repo and tag and "/" not in tag and tag != "latest", (name, c["name"], image)


def test_a_latest_tag_is_refused_at_render():
    require_tool("helm")
    with pytest.raises(k8s.RenderError, match="pinned tag"):
        k8s.template(extra=["--set", "app.image.tag=latest"])


def test_every_container_has_requests_and_limits(docs):
    for name, spec in pod_specs(docs):
        for c in all_containers(spec):
            res = c["resources"]
            assert res["requests"].get("cpu") and res["requests"].get("memory"), (name, c["name"])
            assert res["limits"].get("memory"), (name, c["name"])


def test_autoscaler_and_disruption_budgets(docs):
    hpa = one(docs, "HorizontalPodAutoscaler", "-app")
    assert hpa["spec"]["scaleTargetRef"]["name"] == one(docs, "Deployment", "-app")["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    assert "replicas" not in one(docs, "Deployment", "-app")["spec"]  # the HPA owns the count
    for suffix in ("-app", "-nginx"):
        pdb = one(docs, "PodDisruptionBudget", suffix)
        labels = one(docs, "Deployment", suffix)["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_network_policies_let_only_nginx_reach_the_app_and_keep_loki_in_the_namespace(docs):
    app_policy = one(docs, "NetworkPolicy", "-app")
    app_labels = one(docs, "Deployment", "-app")["spec"]["template"]["metadata"]["labels"]
    nginx_labels = one(docs, "Deployment", "-nginx")["spec"]["template"]["metadata"]["labels"]
    assert app_policy["spec"]["podSelector"]["matchLabels"].items() <= app_labels.items()
    assert app_policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = app_policy["spec"]["ingress"]
    (source,) = rule["from"]
    assert set(source) == {"podSelector"}  # no namespaceSelector / ipBlock: this namespace only
    assert source["podSelector"]["matchLabels"].items() <= nginx_labels.items()
    assert not source["podSelector"]["matchLabels"].items() <= app_labels.items()
    assert [p["port"] for p in rule["ports"]] == ["uwsgi"]

    loki = one(docs, "NetworkPolicy", "-loki")
    assert loki["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "loki"}
    assert loki["spec"]["ingress"] == [{"from": [{"podSelector": {}}]}]


def test_production_example_restricts_who_reaches_nginx(production_docs):
    policy = one(production_docs, "NetworkPolicy", "-nginx")
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
    ingress = one(production_docs, "Ingress", "")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == one(production_docs, "Service", "-nginx")["metadata"]["name"]
    tls_volume = [v for v in one(production_docs, "Deployment", "-nginx")["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == "tls"][0]
    assert tls_volume["secret"]["secretName"] == "pc-builder-tls"


def test_services_reach_their_pods(docs):
    for suffix, ports in (("-app", {"uwsgi"}), ("-nginx", {"http", "https"})):
        svc = one(docs, "Service", suffix)
        deploy = one(docs, "Deployment", suffix)
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= labels.items()
        named = {p["name"] for c in deploy["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in svc["spec"]["ports"]} == ports <= named


def test_the_app_writes_every_layer_to_stdout_and_ships_nothing_by_default(default_docs):
    app = one(default_docs, "Deployment", "-app")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in app["env"]}
    assert env["LOG_TO"] == "stdout"
    assert "LOKI_URL" not in env and "APP_LOG_FILE" not in env
    # fd 3 = a copy of stdout, where service/uwsgi.ini sends the app's own lines
    assert app["command"] == ["sh", "-c", "exec uwsgi --ini /app/service/uwsgi.ini 3>&1"]


def test_with_loki_push_the_app_ships_and_keeps_no_stdout_copy():
    docs = render(extra=["--set", "app.lokiPush.enabled=true"])
    app = one(docs, "Deployment", "-app")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in app["env"]}
    assert env["LOKI_URL"] == "http://loki-gateway/loki/api/v1/push"
    assert env["APP_LOG_FILE"] == "/dev/null"  # Alloy, reading stdout, never sees these lines


def test_nginx_runs_the_rendered_config_with_access_lines_on_stdout(default_docs):
    cm = one(default_docs, "ConfigMap", "-nginx")
    values = json.loads(cm["data"]["template-values.json"])
    assert values["NGINX_ACCESS_LOG"] == "/dev/stdout stack_json"
    app_service = one(default_docs, "Service", "-app")["metadata"]["name"]
    assert values["UPSTREAM_SERVERS"] == f"server {app_service}:3031;"
    nginx = one(default_docs, "Deployment", "-nginx")["spec"]["template"]["spec"]["containers"][0]
    conf_dir = next(m["mountPath"] for m in nginx["volumeMounts"] if m["name"] == "conf")
    assert nginx["command"][:3] == ["nginx", "-c", f"{conf_dir}/nginx.conf"]


def test_basic_auth_from_a_secret_checked_at_start():
    docs = render(extra=["--set", "nginx.basicAuth.existingSecret=site-users"])
    spec = one(docs, "Deployment", "-nginx")["spec"]["template"]["spec"]
    check = [c for c in spec["initContainers"] if c["name"] == "check-htpasswd"][0]
    assert check["command"][-1].endswith("/30-basic-auth.sh")  # the script compose and ./stack run
    (auth,) = [v for v in spec["volumes"] if v["name"] == "auth"]
    assert auth["secret"]["secretName"] == "site-users"
    values = json.loads(one(docs, "ConfigMap", "-nginx")["data"]["template-values.json"])
    mount = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "auth"][0]["mountPath"]
    assert values["BASIC_AUTH_FILE"] == values["BASIC_AUTH_USER_FILE"] == f"{mount}/htpasswd"


def test_basic_auth_is_off_without_a_secret(default_docs):
    values = json.loads(one(default_docs, "ConfigMap", "-nginx")["data"]["template-values.json"])
    assert (values["BASIC_AUTH_FILE"], values["BASIC_AUTH_USER_FILE"]) == ("off", "/dev/null")


def test_a_server_name_that_would_break_the_config_is_refused():
    require_tool("helm")
    with pytest.raises(k8s.RenderError, match="nginx.serverNames"):
        k8s.template(extra=["--set", 'nginx.serverNames=shop.example.com"; evil'])
