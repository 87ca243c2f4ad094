"""One order's trace: from its webhook through the log to every consumer's effect (embedded mode,
the same code path as on Kafka: the trace context travels in the records' headers)."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from vuonminh.shared.events import Envelope, SellerRegistered, Topic
from vuonminh.shared.records import IncomingRecord
from vuonminh.shared.runtime import SERVICE_NAMES, load_service
from vuonminh.shared.tracing import SERVICE_ATTRIBUTE, TRACEPARENT
from vuonminh.wiring.testing import embedded_client, encode, eventually, order_body, seed_catalog, signed_headers

EXPORTER = InMemorySpanExporter()
if not isinstance(trace.get_tracer_provider(), TracerProvider):  # a process has one provider, set once
    _provider = TracerProvider()
    _provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(_provider)

CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"


def _services_on_an_orders_path() -> set[str]:
    """orders takes the webhook; a service consuming a topic that a service on the path publishes
    (its own `<service>.*` topics) is on the path too."""
    path = {"orders"}
    while True:
        published = {topic.value for topic in Topic if topic.value.split(".")[0] in path}
        more = {name for name in SERVICE_NAMES if set(load_service(name).subscriptions) & published} - path
        if not more:
            return path
        path |= more


async def test_one_orders_trace_spans_every_service_on_its_path(tmp_path):
    async with embedded_client(tmp_path) as (client, platform):
        await seed_catalog(client, platform)
        EXPORTER.clear()
        body = encode(order_body("TRACE-1"))
        headers = {**signed_headers(body), "traceparent": f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"}
        response = await client.post("/v1/webhooks/direct", content=body, headers=headers)
        assert response.status_code == 202, response.text
        expected = _services_on_an_orders_path()
        assert {"orders", "logistics", "analytics"} <= expected

        def spans_of_the_order():
            return [s for s in EXPORTER.get_finished_spans() if f"{s.context.trace_id:032x}" == CLIENT_TRACE_ID]

        hops = {("orders", "orders.intake"), ("logistics", "orders.orders"), ("analytics", "logistics.shipments")}

        async def every_service_traced():
            spans = spans_of_the_order()
            found = {s.attributes.get(SERVICE_ATTRIBUTE) for s in spans}
            consumed = {
                (s.attributes[SERVICE_ATTRIBUTE], s.attributes["messaging.destination.name"])
                for s in spans
                if s.kind == trace.SpanKind.CONSUMER
            }
            return found if expected <= found and hops <= consumed else None

        await eventually(every_service_traced, timeout_s=30)
        await client.get("/healthz")
        await client.get("/readyz")
        spans = spans_of_the_order()
        by_id = {span.context.span_id: span for span in spans}
        (server,) = [s for s in spans if s.kind == trace.SpanKind.SERVER]
        assert server.attributes[SERVICE_ATTRIBUTE] == "orders"
        assert server.attributes["http.route"] == "/v1/webhooks/direct"
        assert f"{server.parent.span_id:016x}" == CLIENT_SPAN_ID  # continues the shop's trace
        consumers = [s for s in spans if s.kind == trace.SpanKind.CONSUMER]
        for span in consumers:  # one chain: each consumer span's parent is a span of this trace
            assert span.parent is not None and span.parent.span_id in by_id, span.name
        by_service = {(s.attributes[SERVICE_ATTRIBUTE], s.attributes["messaging.destination.name"]) for s in consumers}
        assert hops <= by_service
        assert {service for service, _ in by_service} >= expected
        # The intake consumer's span is a child of the webhook's, logistics' of the orders consumer's.
        intake = next(s for s in consumers if s.attributes["messaging.destination.name"] == "orders.intake")
        ancestor = by_id[intake.parent.span_id]
        while ancestor.kind != trace.SpanKind.SERVER:  # FastAPI's spans of the request's steps, if any
            ancestor = by_id[ancestor.parent.span_id]
        assert ancestor is server
        # Probes are not traced.
        assert not [s for s in EXPORTER.get_finished_spans() if "/healthz" in s.name or "/readyz" in s.name]


def test_the_trace_context_travels_in_a_header_and_stays_out_of_the_identity():
    event = Envelope.new(
        SellerRegistered(seller_id="s1", name="Hộ A", kind="household", province_code="12", ward_code="03390"),
        source="/test",
    )
    assert event.traceparent is None  # no span, no header: tracing off costs nothing on the wire
    assert TRACEPARENT not in dict(event.headers())
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("publishing") as span:
        traced = Envelope.new(event.data, source="/test")
    context = span.get_span_context()
    assert traced.traceparent.startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    record = traced.to_record()
    incoming = IncomingRecord(record.topic, 0, 0, record.key, record.value, record.headers, 0)
    read = Envelope.from_record(incoming)
    assert read.traceparent == traced.traceparent


def test_spans_are_exported_by_otlp_when_an_endpoint_is_set_and_not_otherwise(tmp_path):
    """In a fresh process (a process sets its tracer provider once): a collector stand-in receives
    the spans by OTLP/HTTP; without the endpoint nothing is configured."""
    import http.server
    import subprocess
    import sys
    import threading

    received: list[tuple[str, bytes]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    program = (
        "from opentelemetry import trace\n"
        "from vuonminh.shared.settings import Settings\n"
        "from vuonminh.shared.tracing import configure_tracing, shutdown_tracing\n"
        "print(configure_tracing(Settings(), 'orders'))\n"
        "with trace.get_tracer('t').start_as_current_span('exported-span'): pass\n"
        "shutdown_tracing()\n"
    )
    try:
        for endpoint, exported in ((f"http://127.0.0.1:{server.server_port}", "True"), ("", "False")):
            done = subprocess.run(
                [sys.executable, "-c", program],
                env={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "PATH": "/usr/bin:/bin"},
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip().splitlines()[-1] == exported
    finally:
        server.shutdown()
    assert [path for path, _ in received] == ["/v1/traces"]
    assert b"exported-span" in received[0][1] and b"vuonminh-orders" in received[0][1]


def test_log_lines_written_in_a_span_name_its_trace():
    from vuonminh.shared.logging import add_trace_ids

    assert add_trace_ids(None, "info", {"event": "outside"}) == {"event": "outside"}
    with trace.get_tracer("test").start_as_current_span("handling") as span:
        line = add_trace_ids(None, "info", {"event": "inside", "event_id": "e1"})
    context = span.get_span_context()
    assert line == {
        "event": "inside",
        "event_id": "e1",
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
    }
