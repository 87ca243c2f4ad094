"""Property-based API fuzzing (schemathesis) of every service's OpenAPI, in-process over ASGI,
as the operator: no 5xx, and every answer is one the document declares, in the declared shape.

Bounded (a few examples per operation) so it stays a quick part of the normal suite."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import hypothesis
import schemathesis
from fastapi import FastAPI
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from vuonminh.shared.app import create_app
from vuonminh.shared.runtime import embedded_platform
from vuonminh.shared.settings import Settings
from vuonminh.wiring.testing import TEST_SETTINGS, operator_headers

_ROOT = Path(tempfile.mkdtemp(prefix="vuonminh-fuzz-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
# Rate limits off: the fuzzer is one caller sending as fast as it can.
_SETTINGS = Settings(**TEST_SETTINGS, rate_limit_per_key="off", rate_limit_per_ip="off")


def _new_app() -> FastAPI:
    return create_app(embedded_platform(_SETTINGS, Path(tempfile.mkdtemp(dir=_ROOT))))


class FreshPlatformPerLifespan:
    """schemathesis runs the app's lifespan once per test (operation) and a platform does not start
    twice: each lifespan gets a new embedded platform in a data dir of its own."""

    def __init__(self) -> None:
        self.app = _new_app()
        self.started = False

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            if self.started:
                self.app = _new_app()
            self.started = True
        await self.app(scope, receive, send)


app = FreshPlatformPerLifespan()
# The document is taken from the app object; the calls go to the app in-process.
schema = schemathesis.openapi.from_dict(app.app.openapi())
schema.app = app
# The signed webhook is fuzzed by its own tests (its body is read raw, after the signature); the
# probes take no input and answer 503 by design while a part is starting.
schema = schema.exclude(path_regex=r"^/v1/webhooks/|^/healthz$|^/readyz$")

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@schema.parametrize()
@hypothesis.settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
    database=None,
)
def test_no_operation_answers_5xx_or_outside_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=operator_headers(), checks=CHECKS)
