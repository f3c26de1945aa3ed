"""deploy/: every YAML and JSON file parses; the Kubernetes manifests, the
compose file, the Prometheus rules and the Grafana dashboard have the
structure we rely on; and every metric name the alert rules and dashboard
panels query is one a real gateway exports on /metrics."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from llmline.gateway.accounting import redis_url
from llmline.settings import Settings
from llmline.testing.server import ServerThread
from tests.gateway.conftest import spec

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
# Series Prometheus makes itself, not the gateway.
PROMETHEUS_OWN = {"up"}
DURATION = r"^[0-9]+(ms|s|m|h|d|w|y)$"
APP = "app.kubernetes.io/name"


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc is not None]


def k8s_objects() -> dict[str, dict[str, Any]]:
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_yaml_documents(path):
            assert doc["kind"] not in objects, f"two {doc['kind']} objects"
            objects[doc["kind"]] = doc
    return objects


# -- every file parses ---------------------------------------------------------------
def test_every_yaml_and_json_file_parses() -> None:
    yaml_files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    json_files = sorted(DEPLOY.rglob("*.json"))
    assert len(yaml_files) >= 10 and json_files
    for path in yaml_files:
        assert load_yaml_documents(path), f"{path} is empty"
    for path in json_files:
        assert isinstance(json.loads(path.read_text("utf-8")), dict), path


# -- Kubernetes ------------------------------------------------------------------------
_METADATA = {
    "type": "object",
    "required": ["name", "labels"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": {"type": "object", "required": [APP]},
    },
}
_SELECTOR = {
    "type": "object",
    "required": ["matchLabels"],
    "properties": {"matchLabels": {"type": "object", "minProperties": 1}},
}
_PROBE = {
    "type": "object",
    "required": ["httpGet"],
    "properties": {
        "httpGet": {
            "type": "object",
            "required": ["path", "port"],
            "properties": {"path": {"type": "string", "pattern": "^/"}},
        }
    },
}
_ENV = {
    "type": "object",
    "required": ["name"],
    "oneOf": [
        {"required": ["value"]},
        {
            "required": ["valueFrom"],
            "properties": {
                "valueFrom": {
                    "type": "object",
                    "required": ["secretKeyRef"],
                    "properties": {"secretKeyRef": {"type": "object", "required": ["name", "key"]}},
                }
            },
        },
    ],
}
_CONTAINER = {
    "type": "object",
    "required": [
        "name",
        "image",
        "ports",
        "env",
        "readinessProbe",
        "livenessProbe",
        "resources",
    ],
    "properties": {
        "image": {"type": "string", "pattern": ":[0-9A-Za-z._-]+$"},  # a pinned tag
        "ports": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "object", "required": ["name", "containerPort"]},
        },
        "env": {"type": "array", "items": _ENV},
        "readinessProbe": _PROBE,
        "livenessProbe": _PROBE,
        "resources": {
            "type": "object",
            "required": ["requests", "limits"],
            "properties": {
                "requests": {"type": "object", "required": ["cpu", "memory"]},
                "limits": {"type": "object", "required": ["memory"]},
            },
        },
    },
}


def _kind(api_version: str, kind: str, body: dict[str, Any], required: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", required],
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": _METADATA,
            required: body,
        },
    }


SCHEMAS: dict[str, dict[str, Any]] = {
    "Deployment": _kind(
        "apps/v1",
        "Deployment",
        {
            "type": "object",
            "required": ["replicas", "selector", "template"],
            "properties": {
                "replicas": {"type": "integer", "minimum": 2},
                "selector": _SELECTOR,
                "template": {
                    "type": "object",
                    "required": ["metadata", "spec"],
                    "properties": {
                        "metadata": {"type": "object", "required": ["labels"]},
                        "spec": {
                            "type": "object",
                            "required": ["containers", "securityContext"],
                            "properties": {
                                "containers": {"type": "array", "minItems": 1, "items": _CONTAINER},
                                "securityContext": {
                                    "type": "object",
                                    "required": ["runAsNonRoot"],
                                    "properties": {"runAsNonRoot": {"const": True}},
                                },
                            },
                        },
                    },
                },
            },
        },
        "spec",
    ),
    "Service": _kind(
        "v1",
        "Service",
        {
            "type": "object",
            "required": ["selector", "ports"],
            "properties": {
                "ports": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "object", "required": ["port", "targetPort"]},
                }
            },
        },
        "spec",
    ),
    "HorizontalPodAutoscaler": _kind(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        {
            "type": "object",
            "required": ["scaleTargetRef", "minReplicas", "maxReplicas", "metrics"],
            "properties": {
                "scaleTargetRef": {"type": "object", "required": ["apiVersion", "kind", "name"]},
                "minReplicas": {"type": "integer", "minimum": 1},
                "maxReplicas": {"type": "integer", "minimum": 1},
                "metrics": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "resource"],
                        "properties": {
                            "type": {"const": "Resource"},
                            "resource": {
                                "type": "object",
                                "required": ["name", "target"],
                                "properties": {
                                    "target": {
                                        "type": "object",
                                        "required": ["type", "averageUtilization"],
                                    }
                                },
                            },
                        },
                    },
                },
            },
        },
        "spec",
    ),
    "PodDisruptionBudget": _kind(
        "policy/v1",
        "PodDisruptionBudget",
        {
            "type": "object",
            "required": ["selector"],
            "properties": {"selector": _SELECTOR},
            "oneOf": [{"required": ["minAvailable"]}, {"required": ["maxUnavailable"]}],
        },
        "spec",
    ),
    "ConfigMap": _kind(
        "v1",
        "ConfigMap",
        {
            "type": "object",
            "required": ["llmline.yaml"],
            "properties": {"llmline.yaml": {"type": "string"}},
        },
        "data",
    ),
    "PersistentVolumeClaim": _kind(
        "v1",
        "PersistentVolumeClaim",
        {
            "type": "object",
            "required": ["accessModes", "resources"],
            "properties": {
                "accessModes": {"type": "array", "contains": {"const": "ReadWriteMany"}},
                "resources": {
                    "type": "object",
                    "required": ["requests"],
                    "properties": {"requests": {"type": "object", "required": ["storage"]}},
                },
            },
        },
        "spec",
    ),
}


def test_k8s_manifests_match_their_schemas() -> None:
    objects = k8s_objects()
    assert set(objects) == set(SCHEMAS)
    for kind, obj in objects.items():
        jsonschema.validate(obj, SCHEMAS[kind])


def test_schemas_reject_what_we_rely_on_missing() -> None:
    deployment = k8s_objects()["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    broken = json.loads(json.dumps(deployment))
    del broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    with pytest.raises(jsonschema.ValidationError, match="readinessProbe"):
        jsonschema.validate(broken, SCHEMAS["Deployment"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_k8s_objects_refer_to_each_other() -> None:
    o = k8s_objects()
    deployment, pod = o["Deployment"], o["Deployment"]["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert o["Service"]["spec"]["selector"].items() <= labels.items()
    assert o["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert o["PodDisruptionBudget"]["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    hpa = o["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["maxReplicas"]

    container = pod["spec"]["containers"][0]
    port_names = {p["name"] for p in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in port_names
    assert o["Service"]["spec"]["ports"][0]["targetPort"] in port_names
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert {m["name"] for m in container["volumeMounts"]} == set(volumes)
    assert volumes["config"]["configMap"]["name"] == o["ConfigMap"]["metadata"]["name"]
    claim = volumes["artifacts"]["persistentVolumeClaim"]["claimName"]
    assert claim == o["PersistentVolumeClaim"]["metadata"]["name"]
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert secrets == {
        "LLMLINE_METADATA_URL": {"name": "llmline-secrets", "key": "metadata-url"},
        "LLMLINE_REDIS_URL": {"name": "llmline-secrets", "key": "redis-url"},
    }


def test_configured_settings_and_env_names_are_real(monkeypatch: pytest.MonkeyPatch) -> None:
    configmap = yaml.safe_load(k8s_objects()["ConfigMap"]["data"]["llmline.yaml"])
    compose_file = yaml.safe_load((DEPLOY / "llmline.yaml").read_text("utf-8"))
    for data in (configmap, compose_file):
        assert Settings(**data).gateway.auth == "on"  # validates every key
    # The variables the manifests set are the ones llmline reads.
    monkeypatch.setenv("LLMLINE_METADATA_URL", "postgresql://u@db:5432/llmline")
    monkeypatch.setenv("LLMLINE_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("LLMLINE_ARTIFACT_ROOT", "/artifacts")
    settings = Settings(**configmap)
    assert settings.metadata_url == "postgresql://u@db:5432/llmline"
    assert settings.artifact_root == "/artifacts"
    assert redis_url(settings) == "redis://cache:6379/0"


# -- compose and the image ---------------------------------------------------------------
def test_compose_services_env_and_mounts() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    services = compose["services"]
    assert set(services) == {"gateway", "postgres", "redis", "prometheus", "grafana"}
    gateway = services["gateway"]
    env = gateway["environment"]
    assert re.match(r"^postgresql://[^@]+@postgres:5432/llmline$", env["LLMLINE_METADATA_URL"])
    assert env["LLMLINE_REDIS_URL"] == "redis://redis:6379/0"
    assert set(gateway["depends_on"]) == {"postgres", "redis"}
    assert (DEPLOY.parent / gateway["build"]["dockerfile"]).is_file()
    assert (DEPLOY / gateway["build"]["context"]).resolve() == DEPLOY.parent
    for name, service in services.items():
        assert "image" in service, name
        assert "healthcheck" in service or name in ("prometheus", "grafana"), name
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
    prometheus_dir = next(v for v in services["prometheus"]["volumes"] if v.startswith("./prom"))
    assert prometheus_dir.split(":")[1] == "/etc/prometheus"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real gateway (uvicorn on loopback, a ``fake:`` backend) for the module."""
    from llmline.gateway import build_app
    from llmline.gateway.deployments.api import create_deployment
    from llmline.workspace import init_workspace

    workspace = init_workspace(tmp_path_factory.mktemp("deploy") / "ws", load_sample_data=False)
    create_deployment(workspace, spec("faq", "fake:alpha"))
    # Generous: the shared CI machine can be slow to import and start the app.
    server = ServerThread(build_app(workspace)).start(timeout_s=300)
    yield server.url
    server.stop()
    workspace.close()


def test_gateway_image_runs_serve_unprivileged_with_a_real_health_route(gateway: str) -> None:
    text = (DEPLOY / "gateway.Dockerfile").read_text("utf-8")
    assert re.search(r"^USER 10001$", text, re.M)
    assert "llmline serve --host 0.0.0.0 --port 8000" in text
    checked = re.findall(r"http://127\.0\.0\.1:8000(/\w+)", text)
    assert checked == ["/healthz"]
    probes = {
        c[p]["httpGet"]["path"]
        for c in k8s_objects()["Deployment"]["spec"]["template"]["spec"]["containers"]
        for p in ("readinessProbe", "livenessProbe", "startupProbe")
    }
    with httpx.Client(base_url=gateway, timeout=30) as http:
        for path in {*checked, *probes}:
            assert http.get(path).status_code == 200, path


# -- Prometheus and Grafana ----------------------------------------------------------------
_RULES_SCHEMA = {
    "type": "object",
    "required": ["groups"],
    "properties": {
        "groups": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "rules"],
                "properties": {
                    "rules": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["alert", "expr", "labels", "annotations"],
                            "additionalProperties": False,
                            "properties": {
                                "alert": {"type": "string", "pattern": "^[A-Z][A-Za-z0-9]+$"},
                                "expr": {"type": "string", "minLength": 3},
                                "for": {"type": "string", "pattern": DURATION},
                                "labels": {
                                    "type": "object",
                                    "required": ["severity"],
                                    "properties": {
                                        "severity": {"enum": ["critical", "warning", "info"]}
                                    },
                                },
                                "annotations": {
                                    "type": "object",
                                    "required": ["summary", "description"],
                                },
                            },
                        },
                    }
                },
            },
        }
    },
}


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text("utf-8"))
    jsonschema.validate(document, _RULES_SCHEMA)
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    board: dict[str, Any] = json.loads((DEPLOY / "grafana" / "llmline-dashboard.json").read_text())
    return board


def dashboard_exprs() -> list[str]:
    board = dashboard()
    exprs = [t["expr"] for panel in board["panels"] for t in panel["targets"]]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["query"]["query"])
    return exprs


def test_prometheus_config_and_rules_structure() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text("utf-8"))
    rules = alert_rules()
    assert len({r["alert"] for r in rules}) == len(rules)
    wanted = {
        "LLMLineHighErrorRate",
        "LLMLineHighLatencyP95",
        "LLMLineCostBurn",
        "LLMLineRequestLogDropping",
        "LLMLineBackendDown",
    }
    assert wanted <= {r["alert"] for r in rules}
    assert [Path(f).name for f in config["rule_files"]] == ["alerts.yaml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    gateway = jobs["llmline-gateway"]
    assert gateway["metrics_path"] == "/metrics"
    assert gateway["static_configs"][0]["targets"] == ["gateway:8000"]  # the compose service
    for rule in rules:  # selectors name the scrape job that exists
        for job in re.findall(r'job="([^"]+)"', rule["expr"]):
            assert job in jobs, rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


def test_dashboard_structure_and_provisioning() -> None:
    board = dashboard()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) and board["uid"] == "llmline-gateway"
    for panel in board["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), panel["title"]
    sources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    assert sources["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "llmline.yaml").read_text()
    )
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    mounts = [v.split(":")[1] for v in compose["services"]["grafana"]["volumes"] if ":" in v]
    board_mount = next(m for m in mounts if m.endswith("llmline-dashboard.json"))
    assert Path(board_mount).parent == Path(provider["providers"][0]["options"]["path"])
    used = {name for expr in dashboard_exprs() for name in metric_names(expr)}
    assert {  # the panels issue 7 asks for
        "llmline_requests_total",
        "llmline_request_latency_seconds_bucket",
        "llmline_time_to_first_token_seconds_bucket",
        "llmline_tokens_total",
        "llmline_cache_lookups_total",
        "llmline_blocked_total",
        "llmline_cost_usd_total",
        "llmline_in_flight_requests",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    } <= used
    quantiles = [e for e in dashboard_exprs() if "histogram_quantile" in e]
    assert any("histogram_quantile(0.95" in e and "latency" in e for e in quantiles)


# -- the metric names are real ------------------------------------------------------------
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana ``label_values``) reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*,[^)]*\)", r"\1", text)
    text = re.sub(r"\$\w+|\$\{\w+\}", "", text)  # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)\s*(\()?", text):
        name, is_call = match.group(1), match.group(2)
        if not is_call and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def test_metric_name_extraction() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, deployment) (rate(llmline_request_latency_seconds"
        '_bucket{deployment=~"$deployment", route!="x"}[$__rate_interval]))) > 2'
    )
    assert metric_names(expr) == {"llmline_request_latency_seconds_bucket"}
    assert metric_names("sum(rate(a_total[5m])) / clamp_min(sum(rate(b_total[5m])), 1e-9)") == {
        "a_total",
        "b_total",
    }
    assert metric_names("label_values(llmline_requests_total, deployment)") == {
        "llmline_requests_total"
    }


def exported_names(text: str) -> set[str]:
    """Every sample name a /metrics page can carry, from its metric families
    (a labelled family with no series yet still declares its name)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("_sum", "_count", "_created"),
    }
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + s for s in suffixes.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


@pytest.fixture
def scraped(gateway: str) -> set[str]:
    import openai

    client = openai.OpenAI(base_url=gateway + "/v1", api_key="test-key", max_retries=0)
    client.chat.completions.create(
        model="faq", messages=[{"role": "user", "content": "hello there"}], max_tokens=4
    )
    for _chunk in client.chat.completions.create(
        model="faq", messages=[{"role": "user", "content": "stream it"}], max_tokens=4, stream=True
    ):
        pass
    with httpx.Client(base_url=gateway, timeout=30) as http:
        assert http.post("/v1/chat/completions", json={"model": "nope"}).status_code >= 400
        page = http.get("/metrics")
    assert page.status_code == 200
    return exported_names(page.text)


def test_every_metric_in_rules_and_panels_is_exported(scraped: set[str]) -> None:
    assert "llmline_requests_total" in scraped  # the scrape is the real one
    referenced: dict[str, set[str]] = {}
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']} reads no metric"
        referenced[rule["alert"]] = names
    for i, expr in enumerate(dashboard_exprs()):
        names = metric_names(expr)
        assert names, f"dashboard query {expr!r} reads no metric"
        referenced[f"dashboard query {i}"] = names
    missing = {
        where: sorted(names - scraped - PROMETHEUS_OWN)
        for where, names in referenced.items()
        if names - scraped - PROMETHEUS_OWN
    }
    assert not missing, f"not exported by the gateway: {missing}"
