"""deploy/k8s/base, written from the code: one API and one worker Deployment per service, their
Service, PodDisruptionBudgets, autoscalers and NetworkPolicies, a migration Job per service, and a
Strimzi KafkaTopic per topic with the settings of shared/transport/kafka_topics.py.

    .venv/bin/python -m vuonminh.wiring.k8s write    # rewrite deploy/k8s/base
    .venv/bin/python -m vuonminh.wiring.k8s check    # exit 1 when deploy/k8s/base differs

Consumer groups, topics and which service consumes what come from the services' specs, so a new
subscription or topic shows up here (tests/test_k8s.py fails until the base is rewritten).
The overlays (deploy/k8s/overlays/) are written by hand and patch this base.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from vuonminh.shared.events import ALL_TOPICS
from vuonminh.shared.runtime import SERVICE_NAMES, load_service
from vuonminh.shared.settings import Settings
from vuonminh.shared.transport.kafka_topics import TopicPolicy

BASE_DIR = Path(__file__).resolve().parents[1] / "deploy" / "k8s" / "base"
HEADER = "# Written by `python -m vuonminh.wiring.k8s write` from the code: edit there, or patch in an overlay.\n"

PART_OF = "vuonminh"
KAFKA_CLUSTER = "vuonminh"  # the Strimzi Kafka resource's name (overlays)
IMAGE = "vuonminh"  # overlays set the registry and tag (kustomize `images:`)
PORT = 8000
# /metrics without credentials on a port of its own (VUONMINH_METRICS_PORT): on the main port it
# answers only the operator; this one is reached only from the monitoring namespace (NetworkPolicy).
METRICS_PORT = 9095
UID = 10001  # the image's user (Dockerfile)

# Partitions of every topic: the most workers of one service that can consume at once, so the
# ceiling of the KEDA scaler (maxReplicaCount). Sized for the livestream peak, see
# deploy/k8s/README.md "Partitions": a national flash sale of 100,000 orders in 30 minutes is about
# 56 orders/s sustained into orders.intake and the topics behind it, with bursts of several hundred
# per second at the start of a livestream. 12 lets each service spread that over up to 12 workers
# (a worker applies a poll's records per partition in one transaction), leaves room to grow, and
# costs little on 3 brokers. Decided once: adding partitions later moves keys and breaks per-key order.
PARTITIONS = 12

# The settings every process of the cluster shares (ConfigMap vuonminh-config). The KafkaTopics
# below are made from exactly these, through the same TopicPolicy the services use.
SHARED_CONFIG: dict[str, str] = {
    "KAFKA_BOOTSTRAP_SERVERS": f"{KAFKA_CLUSTER}-kafka-bootstrap:9092",
    "VUONMINH_ENVIRONMENT": "production",
    # Topics are KafkaTopic resources (Strimzi's topic operator creates them): services create none.
    "VUONMINH_TOPIC_AUTO_CREATE": "false",
    "VUONMINH_TOPIC_PARTITIONS": str(PARTITIONS),
    "VUONMINH_TOPIC_REPLICATION_FACTOR": "3",
    "VUONMINH_TOPIC_MIN_INSYNC_REPLICAS": "2",
    "VUONMINH_TOPIC_RETENTION_DAYS": "7",
    "VUONMINH_DLQ_RETENTION_DAYS": "30",
    "VUONMINH_LOG_JSON": "true",
    "VUONMINH_LOG_LEVEL": "INFO",
    "VUONMINH_SHUTDOWN_DRAIN_S": "15",
    "VUONMINH_CONSUMER_LIVENESS_S": "300",
    "VUONMINH_METRICS_PORT": str(METRICS_PORT),
    # Traces: set OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://otel-collector.monitoring:4318) in an
    # overlay to export them; unset, no traces are recorded.
}

# uvicorn answers requests in flight for up to 20 s, then the workers drain for up to
# VUONMINH_SHUTDOWN_DRAIN_S (15 s): the grace period covers both with room to spare.
GRACE_PERIOD_S = 45
PRESTOP_SLEEP_S = 5  # let the endpoints controller take the pod out of the Service first

RESOURCES = {
    "api": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
    "worker": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
    "migrate": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
}
API_REPLICAS = (2, 6)  # HPA min, max
API_CPU_TARGET = 70
WORKER_LAG_THRESHOLD = 200  # records of lag per worker replica before KEDA adds one


def shared_settings() -> Settings:
    return Settings(**{k: v for k, v in SHARED_CONFIG.items()})  # read as the pods read their env


def topic_policy() -> TopicPolicy:
    return TopicPolicy.from_settings(shared_settings())


def _labels(service: str | None, component: str) -> dict[str, str]:
    labels = {"app.kubernetes.io/part-of": PART_OF, "app.kubernetes.io/component": component}
    if service:
        labels |= {"app.kubernetes.io/name": f"vuonminh-{service}", "vuonminh.io/service": service}
    return labels


def _selector(service: str, component: str) -> dict[str, str]:
    return {"vuonminh.io/service": service, "app.kubernetes.io/component": component}


def _env(service: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {
            "name": "DATABASE_URL",
            "valueFrom": {"secretKeyRef": {"name": f"vuonminh-{service}-database", "key": "url"}},
        }
    ]
    # Public keys that bearer tokens are checked with (shared/auth.py); without them only API keys work.
    env.append(
        {
            "name": "VUONMINH_TOKEN_VERIFY_KEYS",
            "valueFrom": {"secretKeyRef": {"name": "vuonminh-auth", "key": "token-verify-keys", "optional": True}},
        }
    )
    if service in ("orders", "logistics"):
        # The Fernet key(s) that encrypt secrets at rest (never a value in the repo): shops' webhook
        # secrets in orders, carrier partners' signing secrets in logistics.
        env.append(
            {
                "name": "VUONMINH_SECRETS_KEY",
                "valueFrom": {"secretKeyRef": {"name": f"vuonminh-{service}-secrets", "key": "secrets-key"}},
            }
        )
    return env


def _env_from(service: str) -> list[dict[str, Any]]:
    env_from: list[dict[str, Any]] = [{"configMapRef": {"name": "vuonminh-config"}}]
    # Keys of the outside world, as environment variables, from Secrets the ops team creates:
    # marketplace platforms' app keys for orders, carriers' API tokens and callback keys for logistics.
    optional = {"orders": "vuonminh-orders-platforms", "logistics": "vuonminh-logistics-carriers"}
    if service in optional:
        env_from.append({"secretRef": {"name": optional[service], "optional": True}})
    return env_from


def _probe(path: str, *, period_s: int, failures: int, timeout_s: int = 5) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period_s,
        "timeoutSeconds": timeout_s,
        "failureThreshold": failures,
    }


def _pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _pod_spec(service: str, role: str) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "vuonminh",
        "image": IMAGE,
        "args": ["serve", service, "--role", role],
        "ports": [{"name": "http", "containerPort": PORT}, {"name": "metrics", "containerPort": METRICS_PORT}],
        "envFrom": _env_from(service),
        "env": _env(service),
        "resources": RESOURCES[role],
        # Liveness: the process and its loops run (a consumer that stopped polling fails it).
        # Readiness: what this role needs (database, log, consumer assigned) answers.
        # Startup: migrations wait for the database at start; up to 10 minutes.
        "startupProbe": _probe("/healthz", period_s=5, failures=120, timeout_s=3),
        "livenessProbe": _probe("/healthz", period_s=10, failures=3),
        "readinessProbe": _probe("/readyz", period_s=5, failures=2),
        "securityContext": _container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if role == "api":
        container["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SLEEP_S)]}}}
    return {
        "serviceAccountName": "vuonminh",
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": GRACE_PERIOD_S,
        "securityContext": _pod_security(),
        "containers": [container],
        # The root filesystem is read-only: /tmp is the one writable place.
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": _selector(service, role)},
            }
        ],
    }


def deployment(service: str, role: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"vuonminh-{service}-{role}", "labels": _labels(service, role)},
        "spec": {
            "replicas": API_REPLICAS[0] if role == "api" else 1,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": _selector(service, role)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": _labels(service, role),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(METRICS_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": _pod_spec(service, role),
            },
        },
    }


def api_service(service: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"vuonminh-{service}", "labels": _labels(service, "api")},
        "spec": {
            "selector": _selector(service, "api"),
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def pod_disruption_budget(service: str, role: str) -> dict[str, Any]:
    # APIs keep one pod serving through a node drain; a worker may go (its partitions move).
    budget = {"minAvailable": 1} if role == "api" else {"maxUnavailable": 1}
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": f"vuonminh-{service}-{role}", "labels": _labels(service, role)},
        "spec": {**budget, "selector": {"matchLabels": _selector(service, role)}},
    }


def api_autoscaler(service: str) -> dict[str, Any]:
    low, high = API_REPLICAS
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": f"vuonminh-{service}-api", "labels": _labels(service, "api")},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"vuonminh-{service}-api"},
            "minReplicas": low,
            "maxReplicas": high,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": API_CPU_TARGET},
                    },
                }
            ],
        },
    }


def worker_scaler(service: str) -> dict[str, Any]:
    """KEDA scales a worker on its consumer group's lag, never past the partitions (a member
    beyond them would sit idle)."""
    spec = load_service(service)
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": f"vuonminh-{service}-worker", "labels": _labels(service, "worker")},
        "spec": {
            "scaleTargetRef": {"name": f"vuonminh-{service}-worker"},
            # Never 0: the worker also runs the outbox relay.
            "minReplicaCount": 1,
            "maxReplicaCount": topic_policy().partitions,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
                }
            },
            "triggers": [
                {
                    "type": "kafka",
                    "metadata": {
                        "bootstrapServers": SHARED_CONFIG["KAFKA_BOOTSTRAP_SERVERS"],
                        "consumerGroup": spec.consumer_group,
                        # No `topic`: the lag is summed over every topic the group reads, ...
                        "lagThreshold": str(WORKER_LAG_THRESHOLD),
                        "offsetResetPolicy": "earliest",
                        # ... and no more replicas than partitions with records.
                        "allowIdleConsumers": "false",
                        "scaleToZeroOnInvalidOffset": "false",
                    },
                }
            ],
        },
    }


def migration_job(service: str) -> dict[str, Any]:
    pod = _pod_spec(service, "migrate")
    container = pod["containers"][0]
    container["args"] = ["db", "upgrade", service]
    container["resources"] = RESOURCES["migrate"]
    container["envFrom"] = [{"configMapRef": {"name": "vuonminh-config"}}]
    container["env"] = _env(service)[:1]  # the database only
    for probe in ("startupProbe", "livenessProbe", "readinessProbe", "ports"):
        container.pop(probe)
    pod.pop("topologySpreadConstraints")
    pod["restartPolicy"] = "Never"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"vuonminh-{service}-migrate", "labels": _labels(service, "migrate")},
        "spec": {
            "backoffLimit": 6,
            "activeDeadlineSeconds": 900,
            "ttlSecondsAfterFinished": 3600,
            "template": {"metadata": {"labels": _labels(service, "migrate")}, "spec": pod},
        },
    }


def _dns_egress() -> dict[str, Any]:
    return {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


def _database_egress(service: str) -> dict[str, Any]:
    # The service's own PostgreSQL: the ops team labels its pods (or patches in an ipBlock for a
    # managed database), see deploy/k8s/README.md "Databases".
    return {
        "to": [
            {"namespaceSelector": {}, "podSelector": {"matchLabels": {f"vuonminh.io/database-of-{service}": "true"}}}
        ],
        "ports": [{"protocol": "TCP", "port": 5432}],
    }


def _kafka_egress() -> dict[str, Any]:
    return {
        "to": [{"podSelector": {"matchLabels": {"strimzi.io/cluster": KAFKA_CLUSTER}}}],
        "ports": [{"protocol": "TCP", "port": 9092}],
    }


def network_policy(service: str, component: str) -> dict[str, Any]:
    ingress: list[dict[str, Any]] = []
    if component == "api":
        # Webhooks and users reach the API (through the ingress controller) on its port.
        ingress.append({"ports": [{"protocol": "TCP", "port": PORT}]})
    if component in ("api", "worker"):
        # The metrics port only from the metrics scraper's namespace; nothing else calls a worker.
        ingress.append(
            {
                "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                "ports": [{"protocol": "TCP", "port": METRICS_PORT}],
            }
        )
    egress = [_dns_egress(), _database_egress(service)]
    if component != "migrate":
        egress.append(_kafka_egress())
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"vuonminh-{service}-{component}", "labels": _labels(service, component)},
        "spec": {
            "podSelector": {"matchLabels": _selector(service, component)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


def default_deny() -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "vuonminh-default-deny", "labels": _labels(None, "network")},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": PART_OF}},
            "policyTypes": ["Ingress", "Egress"],
        },
    }


def kafka_topic(topic: str) -> dict[str, Any]:
    policy = topic_policy()
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {
            "name": topic,
            "labels": {"strimzi.io/cluster": KAFKA_CLUSTER, **_labels(None, "topic")},
        },
        "spec": {
            "topicName": topic,
            "partitions": policy.partitions,
            "replicas": policy.replication_factor,
            "config": {name: int(value) for name, value in sorted(policy.configs_for(topic).items())},
        },
    }


def config_map() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "vuonminh-config", "labels": _labels(None, "config")},
        "data": dict(SHARED_CONFIG),
    }


def service_account() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "vuonminh", "labels": _labels(None, "identity")},
        "automountServiceAccountToken": False,
    }


def service_documents(service: str) -> list[dict[str, Any]]:
    spec = load_service(service)
    documents = [
        deployment(service, "api"),
        api_service(service),
        pod_disruption_budget(service, "api"),
        api_autoscaler(service),
        network_policy(service, "api"),
        deployment(service, "worker"),
        pod_disruption_budget(service, "worker"),
    ]
    if spec.subscriptions:
        documents.append(worker_scaler(service))
    documents += [network_policy(service, "worker"), migration_job(service), network_policy(service, "migrate")]
    return documents


def files() -> dict[str, str]:
    """File name -> content of deploy/k8s/base."""
    out: dict[str, list[dict[str, Any]]] = {
        "config.yaml": [config_map(), service_account(), default_deny()],
        "topics.yaml": [kafka_topic(topic) for topic in ALL_TOPICS],
    }
    for service in SERVICE_NAMES:
        out[f"{service}.yaml"] = service_documents(service)
    rendered = {name: HEADER + yaml.safe_dump_all(docs, sort_keys=False, width=120) for name, docs in out.items()}
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "labels": [{"pairs": {"app.kubernetes.io/managed-by": "kustomize"}}],
        "resources": sorted(out),
    }
    rendered["kustomization.yaml"] = HEADER + yaml.safe_dump(kustomization, sort_keys=False)
    return rendered


def differences(base_dir: Path = BASE_DIR) -> list[str]:
    wanted = files()
    found = {path.name for path in base_dir.glob("*.yaml")} if base_dir.is_dir() else set()
    problems = [f"{name} is not written by the generator" for name in sorted(found - set(wanted))]
    for name, content in wanted.items():
        path = base_dir / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.read_text(encoding="utf-8") != content:
            problems.append(f"{name} differs from what the code says")
    return problems


def main(argv: list[str] | None = None) -> int:
    action = (argv if argv is not None else sys.argv[1:] or ["check"])[0]
    if action == "write":
        BASE_DIR.mkdir(parents=True, exist_ok=True)
        for path in BASE_DIR.glob("*.yaml"):
            path.unlink()
        for name, content in files().items():
            (BASE_DIR / name).write_text(content, encoding="utf-8")
        print(f"wrote {len(files())} files to {BASE_DIR}")
        return 0
    if action == "check":
        problems = differences()
        for problem in problems:
            print(f"deploy/k8s/base: {problem} (python -m vuonminh.wiring.k8s write)", file=sys.stderr)
        return 1 if problems else 0
    print("usage: python -m vuonminh.wiring.k8s write|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
