"""OpenTelemetry traces: one order's trace from its webhook through Kafka to each consumer's effect.

- FastAPI's own telemetry opens a SERVER span per request (continuing the caller's `traceparent`).
- Every event carries the W3C `traceparent` of the span it was published in, as a record header
  (both transports carry headers; the outbox stores it with the row), next to the CloudEvents ones.
- A consumer opens a CONSUMER span per event, child of that header, around the handler; events the
  handler publishes carry this span, so the next service's span is its child, and so on.
- Exported by OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set (`configure_tracing`); otherwise
  nothing is recorded (the API's no-op tracer), and an incoming `traceparent` is passed on unchanged.
Every span has the attribute `vuonminh.service` (embedded mode runs the four services in one process).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import structlog
from opentelemetry import trace
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from vuonminh.shared.settings import Settings

log = structlog.get_logger(__name__)

TRACEPARENT = "traceparent"
SERVICE_ATTRIBUTE = "vuonminh.service"
_PROPAGATOR = TraceContextTextMapPropagator()
_tracer = trace.get_tracer("vuonminh")
# The consumer spans of the events being handled now, by event id: an event published with
# `caused_by=<event>` continues that event's span even when a batch handler takes many at once.
_processing: ContextVar[dict[str, SpanContext] | None] = ContextVar("vuonminh_processing_spans", default=None)
_configured = False


def configure_tracing(settings: Settings, service_name: str) -> bool:
    """Installs the OTLP exporter when an endpoint is configured; True when traces are exported."""
    global _configured
    endpoint = (settings.otlp_endpoint or "").strip()
    if not endpoint or _configured:
        return _configured
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"vuonminh-{service_name}"}))
    # The exporter reads OTEL_EXPORTER_OTLP_* (headers, timeout, ...) itself; the path is added here.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")))
    trace.set_tracer_provider(provider)
    _configured = True
    log.info("tracing.exporting", endpoint=endpoint, service=service_name)
    return True


def shutdown_tracing() -> None:
    """Sends the spans still buffered (at process exit)."""
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if _configured and shutdown is not None:
        shutdown()


def format_traceparent(context: SpanContext) -> str | None:
    """The W3C `traceparent` of a span context, as the propagator writes it."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(trace.NonRecordingSpan(context)))
    return carrier.get(TRACEPARENT)


def _context_of(traceparent: str | None) -> Any:
    return _PROPAGATOR.extract({TRACEPARENT: traceparent}) if traceparent else None


def traceparent_for_new_event(caused_by_id: str | None, caused_by_traceparent: str | None) -> str | None:
    """The `traceparent` a new event carries: the consumer span of the event that caused it, else the
    current span (an HTTP request's), else the cause's own."""
    if caused_by_id is not None:
        spans = _processing.get()
        if spans and caused_by_id in spans:
            return format_traceparent(spans[caused_by_id])
    current = trace.get_current_span().get_span_context()
    if current.is_valid:
        return format_traceparent(current)
    return caused_by_traceparent


@contextmanager
def consumer_spans(service: str, group: str, envelopes: Sequence[Any]) -> Iterator[list[Span]]:
    """One CONSUMER span per event, child of the span that published it, open while the handler runs.
    With one event its span is also the current one (spans the handler opens nest under it)."""
    spans = [
        _tracer.start_span(
            f"{str(envelope.topic) or 'event'} process",
            context=_context_of(envelope.traceparent),
            kind=SpanKind.CONSUMER,
            attributes={
                SERVICE_ATTRIBUTE: service,
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": str(envelope.topic),
                "messaging.consumer.group.name": group,
                "messaging.message.id": envelope.id,
                "cloudevents.event_type": envelope.type,
                "vuonminh.correlation_id": envelope.correlation_id,
            },
        )
        for envelope in envelopes
    ]
    known = dict(_processing.get() or {})
    known.update({envelope.id: span.get_span_context() for envelope, span in zip(envelopes, spans, strict=True)})
    token = _processing.set(known)
    try:
        if len(spans) == 1:
            with trace.use_span(spans[0], end_on_exit=False, record_exception=False, set_status_on_exception=False):
                yield spans
        else:
            yield spans
    except BaseException as error:
        for span in spans:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, repr(error)[:200]))
        raise
    finally:
        _processing.reset(token)
        for span in spans:
            span.end()


QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def fastapi_telemetry() -> dict[str, Any]:
    """FastAPI's own telemetry makes the HTTP SERVER span of each request (and spans of its steps)
    with the global provider `configure_tracing` sets; probes and scrapes are left out, and FastAPI
    never sets up exporters of its own."""
    return {"auto_configure": False, "exclude": lambda scope: scope.get("path") in QUIET_PATHS}


class ServiceOnSpan:
    """Names the service on the request's SERVER span (embedded, one app serves all four: the
    matched route's module says which)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        span = trace.get_current_span()
        if scope["type"] != "http" or not span.is_recording():
            await self.app(scope, receive, send)
            return

        async def naming_send(message: Message) -> None:
            # Before the reply starts (FastAPI ends the span with the reply): the route is matched now.
            if message["type"] == "http.response.start":
                service = self.service
                endpoint = getattr(scope.get("route"), "endpoint", None)
                module = getattr(endpoint, "__module__", "").split(".")
                if len(module) > 2 and module[0] == "vuonminh" and module[1] != "shared":
                    service = module[1]
                span.set_attribute(SERVICE_ATTRIBUTE, service)
            await send(message)

        await self.app(scope, receive, naming_send)
