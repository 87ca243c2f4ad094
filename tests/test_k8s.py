"""deploy/k8s: every overlay renders with a real kustomize, validates offline, and keeps the rules.

- kustomize: the pinned version scripts/install-kustomize builds into the tools cache (scripts/bootstrap
  --test runs it). Without it the render tests skip, except under CI=true where they fail.
- Kubernetes kinds: against the Kubernetes OpenAPI schemas shipped in the pinned kubernetes-validate
  package, strict (an unknown field is an error).
- Custom resources (Strimzi Kafka, KafkaNodePool, KafkaTopic; KEDA ScaledObject): against the
  operators' own CRD schemas, vendored in deploy/k8s/crds/ with their version and source.
- The rules an ops team relies on: probes, limits and a locked-down security context on every pod,
  no Secret values, NetworkPolicies around every pod, workers never scaled past the partitions,
  topics exactly as the services' topic settings say.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from vuonminh.shared.events import ALL_TOPICS
from vuonminh.shared.runtime import SERVICE_NAMES, load_service
from vuonminh.shared.settings import Settings
from vuonminh.shared.transport.kafka_topics import TopicPolicy
from vuonminh.wiring import k8s

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = sorted(path.name for path in (K8S / "overlays").iterdir() if (path / "kustomization.yaml").is_file())
CRDS = K8S / "crds"
# The oldest Kubernetes minor the manifests must be valid for (see deploy/k8s/README.md).
KUBERNETES_VERSION = "1.33"
CRD_SHA256 = {
    "strimzi-1.2.0/040-Crd-kafka.yaml": "b5b27fc8d52068a77cde7c40d47c068023c7b4e92fc266c45200db2d2506392a",
    "strimzi-1.2.0/043-Crd-kafkatopic.yaml": "36390f0731c699448076d4ee739e8b7f331d083e91a7fb71500aaa830ab1127e",
    "strimzi-1.2.0/045-Crd-kafkanodepool.yaml": "411c1b32ef8c1a6408ac9d4fe791115a6ce2b41107204588f976a3ed19be2430",
    "keda-2.21.0/keda.sh_scaledobjects.yaml": "af35555862a83933b074af14ad439c4b4ceabaf4daa3e9338e9b23e36d308d80",
}
SECRET_LIKE = re.compile(r"SECRET|PASSWORD|TOKEN|(^|_)KEY($|_)|DATABASE_URL", re.IGNORECASE)


def _missing(message: str) -> None:
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@cache
def _kustomize() -> str | None:
    try:
        done = subprocess.run(
            [str(REPO / "scripts" / "install-kustomize")], capture_output=True, text=True, timeout=600, check=True
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        return f"scripts/install-kustomize failed: {getattr(error, 'stderr', '')}"
    return done.stdout.strip().splitlines()[-1]


def render(overlay: str) -> list[dict[str, Any]]:
    binary = _kustomize()
    if not binary or not Path(binary).is_file():
        _missing(f"kustomize unavailable ({binary})")
    done = subprocess.run([binary, "build", str(K8S / "overlays" / overlay)], capture_output=True, text=True)
    assert done.returncode == 0, f"kustomize build {overlay} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(request.param)


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_templates(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]


# --- the generated base is what the code says ------------------------------------------------


def test_the_base_is_what_the_generator_writes_from_the_code() -> None:
    assert k8s.differences() == [], "run: .venv/bin/python -m vuonminh.wiring.k8s write"


def test_every_overlay_is_checked() -> None:
    assert OVERLAYS == ["production", "single-node"]


# --- schemas -----------------------------------------------------------------------------------


def _validate_builtin(doc: dict[str, Any]) -> str | None:
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = "/".join(map(str, error.path)) if hasattr(error, "path") else ""
        return f"{doc['kind']}/{doc['metadata']['name']}: {where}: {error.message}"
    return None


@cache
def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema, from the vendored CRDs."""
    schemas = {}
    for path in sorted(CRDS.glob("*/*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                api_version = f"{crd['spec']['group']}/{version['name']}"
                schemas[(api_version, crd["spec"]["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return schemas


def _unknown_fields(value: Any, schema: dict[str, Any], path: str) -> Iterator[str]:
    """Fields the structural schema does not declare: the API server would drop them silently."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            if key in schema["properties"]:
                yield from _unknown_fields(item, schema["properties"][key], f"{path}/{key}")
            elif not schema.get("additionalProperties"):
                yield f"{path}/{key}: unknown field"
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            yield from _unknown_fields(item, schema["additionalProperties"], f"{path}/{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _unknown_fields(item, schema["items"], f"{path}/{index}")


def _validate_custom(doc: dict[str, Any]) -> list[str]:
    schema = _crd_schemas().get((doc["apiVersion"], doc["kind"]))
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    if schema is None:
        return [f"{name}: no vendored CRD serves {doc['apiVersion']}"]
    body = {key: value for key, value in doc.items() if key != "metadata"}
    trimmed = copy.deepcopy(schema)
    trimmed.get("properties", {}).pop("metadata", None)
    validator = jsonschema.Draft7Validator(trimmed)
    errors = [f"{name}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
    errors += [f"{name}: {problem}" for problem in _unknown_fields(body, trimmed, "")]
    return errors


def schema_errors(docs: list[dict[str, Any]]) -> list[str]:
    errors = []
    for doc in docs:
        if (doc["apiVersion"].split("/")[0]).endswith((".strimzi.io", "keda.sh")):
            errors += _validate_custom(doc)
        else:
            problem = _validate_builtin(doc)
            if problem:
                errors.append(problem)
    return errors


def test_the_vendored_crds_are_the_operators_files() -> None:
    found = {str(path.relative_to(CRDS)): path for path in CRDS.glob("*/*.yaml")}
    assert set(found) == set(CRD_SHA256)
    for name, path in found.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == CRD_SHA256[name], f"{name} was edited"


def test_every_resource_is_valid_against_its_schema(rendered) -> None:
    overlay, docs = rendered
    errors = schema_errors(docs)
    assert not errors, f"{overlay}:\n" + "\n".join(errors)


@pytest.mark.parametrize(
    ("kind", "break_it", "expected"),
    [
        ("Deployment", lambda d: _container(d).update(imagePullPolcy="x"), "imagePull"),
        ("Deployment", lambda d: d["spec"].update(replicas="two"), "two"),
        ("KafkaTopic", lambda d: d["spec"].update(partitons=12), "partitons"),
        ("KafkaTopic", lambda d: d["spec"].update(partitions="twelve"), "twelve"),
        ("ScaledObject", lambda d: d["spec"].update(maxReplicaCount="many"), "many"),
        ("ScaledObject", lambda d: d["spec"]["triggers"][0].update(tpye="kafka"), "tpye"),
        ("Kafka", lambda d: d["spec"]["kafka"].pop("listeners"), "listeners"),
    ],
    ids=["unknown-container-field", "replicas-not-int", "topic-typo", "partitions-not-int", "max-not-int",
         "trigger-typo", "kafka-without-listeners"],
)  # fmt: skip
def test_the_validation_is_live(kind, break_it, expected) -> None:
    """Each of these mistakes is caught, by the schema of the kind it was made in."""
    docs = render("production")
    broken = copy.deepcopy(next(doc for doc in docs if doc["kind"] == kind))
    break_it(broken)
    errors = schema_errors([broken])
    assert errors and any(expected in error for error in errors), errors


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


# --- rules -------------------------------------------------------------------------------------


def test_every_service_has_its_parts(rendered) -> None:
    _, docs = rendered
    for service in SERVICE_NAMES:
        for role in ("api", "worker"):
            deployment = named(docs, "Deployment", f"vuonminh-{service}-{role}")
            assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == [
                "serve",
                service,
                "--role",
                role,
            ]
            named(docs, "PodDisruptionBudget", f"vuonminh-{service}-{role}")
            named(docs, "NetworkPolicy", f"vuonminh-{service}-{role}")
        service_doc = named(docs, "Service", f"vuonminh-{service}")
        assert service_doc["spec"]["selector"]["app.kubernetes.io/component"] == "api"
        hpa = named(docs, "HorizontalPodAutoscaler", f"vuonminh-{service}-api")
        assert hpa["spec"]["scaleTargetRef"]["name"] == f"vuonminh-{service}-api"
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
        job = named(docs, "Job", f"vuonminh-{service}-migrate")
        assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade", service]


def test_every_pod_has_probes_limits_and_a_locked_down_security_context(rendered) -> None:
    overlay, docs = rendered
    problems = []
    for name, template in pod_templates(docs):
        pod = template["spec"]
        security = pod.get("securityContext", {})
        if not (security.get("runAsNonRoot") and security.get("runAsUser", 0) > 0):
            problems.append(f"{name}: not forced to run as non-root")
        if security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: no RuntimeDefault seccomp profile")
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{name}: mounts a service account token it does not need")
        writable = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in pod["containers"]:
            where = f"{name}/{container['name']}"
            context = container.get("securityContext", {})
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root filesystem not read-only")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: privilege escalation allowed")
            if context.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities not all dropped")
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            if mounts.get("/tmp") not in writable:
                problems.append(f"{where}: no writable emptyDir at /tmp")
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                if set(resources.get(bound, {})) != {"cpu", "memory"}:
                    problems.append(f"{where}: {bound} must set cpu and memory, has {resources.get(bound)}")
            if name.startswith("Deployment/"):
                for probe, path in (
                    ("startupProbe", "/healthz"),
                    ("livenessProbe", "/healthz"),
                    ("readinessProbe", "/readyz"),
                ):
                    if container.get(probe, {}).get("httpGet", {}).get("path") != path:
                        problems.append(f"{where}: {probe} must GET {path}")
    assert not problems, f"{overlay}:\n" + "\n".join(problems)


def test_the_grace_period_covers_the_request_drain_and_the_worker_drain(rendered) -> None:
    _, docs = rendered
    config = named(docs, "ConfigMap", "vuonminh-config")["data"]
    uvicorn_drain_s = 20  # wiring/cli.py: timeout_graceful_shutdown
    needed = uvicorn_drain_s + float(config["VUONMINH_SHUTDOWN_DRAIN_S"]) + k8s.PRESTOP_SLEEP_S
    for name, template in pod_templates(docs):
        if name.startswith("Deployment/"):
            assert template["spec"]["terminationGracePeriodSeconds"] > needed, name


def test_no_secret_values_anywhere(rendered) -> None:
    overlay, docs = rendered
    assert not of_kind(docs, "Secret"), "Secrets are created by the ops team, never rendered from the repo"
    problems = []
    for key in named(docs, "ConfigMap", "vuonminh-config")["data"]:
        if SECRET_LIKE.search(key):
            problems.append(f"ConfigMap key {key} looks like a secret")
    for name, template in pod_templates(docs):
        for container in template["spec"]["containers"]:
            for variable in container.get("env", []):
                if SECRET_LIKE.search(variable["name"]):
                    ref = variable.get("valueFrom", {}).get("secretKeyRef")
                    if "value" in variable or not ref:
                        problems.append(f"{name}: {variable['name']} must come from a secretKeyRef")
            if "DATABASE_URL" not in {v["name"] for v in container.get("env", [])}:
                problems.append(f"{name}: no DATABASE_URL from its Secret")
    orders_env = named(docs, "Deployment", "vuonminh-orders-api")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert any(v["name"] == "VUONMINH_SECRETS_KEY" for v in orders_env)
    assert not problems, f"{overlay}:\n" + "\n".join(problems)


def test_every_pod_is_fenced_by_a_network_policy(rendered) -> None:
    overlay, docs = rendered
    policies = of_kind(docs, "NetworkPolicy")
    problems = []
    for name, template in pod_templates(docs):
        labels = template["metadata"]["labels"]
        selecting = [
            p for p in policies if all(labels.get(k) == v for k, v in p["spec"]["podSelector"]["matchLabels"].items())
        ]
        if not any("Egress" in p["spec"]["policyTypes"] for p in selecting):
            problems.append(f"{name}: no egress policy")
        if not any(p["metadata"]["name"] == "vuonminh-default-deny" for p in selecting):
            problems.append(f"{name}: not under the default deny")
        open_ingress = [rule for p in selecting for rule in p["spec"].get("ingress", []) if "from" not in rule]
        if open_ingress and labels["app.kubernetes.io/component"] != "api":
            problems.append(f"{name}: ingress from anywhere, but only APIs take traffic")
        service = labels["vuonminh.io/service"]
        for policy in selecting:
            for rule in policy["spec"].get("egress", []):
                for peer in rule.get("to", []):
                    wanted = peer.get("podSelector", {}).get("matchLabels", {})
                    if "ipBlock" in peer or not wanted:
                        problems.append(f"{name}: egress to {peer}: only DNS, Kafka and its own database")
                    database_labels = [key for key in wanted if key.startswith("vuonminh.io/database-of-")]
                    if database_labels and database_labels != [f"vuonminh.io/database-of-{service}"]:
                        problems.append(f"{name}: egress to another service's database {database_labels}")
    assert not problems, f"{overlay}:\n" + "\n".join(problems)


def _policy_of(docs: list[dict[str, Any]]) -> TopicPolicy:
    data = named(docs, "ConfigMap", "vuonminh-config")["data"]
    return TopicPolicy.from_settings(Settings(**data))


def test_topics_are_exactly_what_the_services_topic_settings_say(rendered) -> None:
    overlay, docs = rendered
    policy = _policy_of(docs)
    topics = {doc["spec"]["topicName"]: doc for doc in of_kind(docs, "KafkaTopic")}
    assert set(topics) == set(ALL_TOPICS)
    for name, doc in topics.items():
        spec = doc["spec"]
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == named(docs, "Kafka", "vuonminh")["metadata"]["name"]
        assert spec["partitions"] == policy.partitions, name
        assert spec["replicas"] == policy.replication_factor, name
        assert {k: str(v) for k, v in spec["config"].items()} == policy.configs_for(name), (overlay, name)
    assert policy.auto_create is False, "topics are KafkaTopic resources: the services must not create any"
    if overlay == "production":
        assert policy.problems() == [], policy.problems()
        assert (policy.replication_factor, policy.min_insync_replicas) == (3, 2)
        kafka_config = named(docs, "Kafka", "vuonminh")["spec"]["kafka"]["config"]
        assert kafka_config["min.insync.replicas"] == 2 and kafka_config["auto.create.topics.enable"] is False
        brokers = [p for p in of_kind(docs, "KafkaNodePool") if "broker" in p["spec"]["roles"]]
        assert sum(p["spec"]["replicas"] for p in brokers) >= policy.replication_factor
    dead_letter = [name for name in topics if name.endswith(".dlq")]
    assert dead_letter and all(
        int(topics[n]["spec"]["config"]["retention.ms"]) > policy.retention_ms for n in dead_letter
    )


def test_workers_scale_on_their_groups_lag_never_past_the_partitions(rendered) -> None:
    overlay, docs = rendered
    partitions = {doc["spec"]["topicName"]: doc["spec"]["partitions"] for doc in of_kind(docs, "KafkaTopic")}
    config = named(docs, "ConfigMap", "vuonminh-config")["data"]
    for service in SERVICE_NAMES:
        spec = load_service(service)
        scalers = [d for d in of_kind(docs, "ScaledObject") if d["metadata"]["name"] == f"vuonminh-{service}-worker"]
        if not spec.subscriptions:
            assert not scalers, f"{service} consumes nothing: nothing to scale on"
            continue
        assert len(scalers) == 1, f"{overlay}: {service} consumes but has no ScaledObject"
        scaler = scalers[0]["spec"]
        assert scaler["scaleTargetRef"]["name"] == f"vuonminh-{service}-worker"
        trigger = scaler["triggers"][0]
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["consumerGroup"] == config.get("VUONMINH_KAFKA_NAMESPACE", "") + spec.consumer_group
        assert trigger["metadata"]["bootstrapServers"] == config["KAFKA_BOOTSTRAP_SERVERS"]
        assert trigger["metadata"]["allowIdleConsumers"] == "false"
        ceiling = min(partitions[topic] for topic in spec.subscriptions)
        assert 1 <= scaler["minReplicaCount"] <= scaler["maxReplicaCount"] <= ceiling, (overlay, service, scaler)


def test_kafka_is_where_the_services_look_for_it(rendered) -> None:
    _, docs = rendered
    kafka = named(docs, "Kafka", "vuonminh")
    listeners = {listener["port"] for listener in kafka["spec"]["kafka"]["listeners"]}
    bootstrap = named(docs, "ConfigMap", "vuonminh-config")["data"]["KAFKA_BOOTSTRAP_SERVERS"]
    host, port = bootstrap.rsplit(":", 1)
    assert host == f"{kafka['metadata']['name']}-kafka-bootstrap" and int(port) in listeners
    assert kafka["spec"]["entityOperator"]["topicOperator"] is not None  # turns KafkaTopics into topics
