"""One order's trace across the service processes on Kafka: each exports its spans by OTLP/HTTP to a
collector stand-in, and the order's spans, from the webhook on, come from every service on its path."""

from __future__ import annotations

import asyncio
import http.server
import threading

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from vuonminh.shared.events import Topic
from vuonminh.shared.runtime import SERVICE_NAMES, load_service
from vuonminh.wiring.testing import encode, eventually, order_body, signed_headers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN_ID = "b7ad6b7169203331"


class Collector:
    """Takes OTLP/HTTP trace exports; keeps (service.name, span) per trace id."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, object]] = []
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                request = ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
                for resource_spans in request.resource_spans:
                    attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                    for scope_spans in resource_spans.scope_spans:
                        collector.spans += [(attributes.get("service.name"), s) for s in scope_spans.spans]
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *_args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of_trace(self, trace_id: str) -> list[tuple[str, object]]:
        return [(service, span) for service, span in self.spans if span.trace_id.hex() == trace_id]


def _services_on_an_orders_path() -> set[str]:
    path = {"orders"}
    while True:
        published = {topic.value for topic in Topic if topic.value.split(".")[0] in path}
        more = {name for name in SERVICE_NAMES if set(load_service(name).subscriptions) & published} - path
        if not more:
            return path
        path |= more


async def test_one_orders_trace_spans_the_service_processes_on_kafka(start_service, seed_catalog_via):
    collector = Collector()
    try:
        tracing = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
        processes = {name: await start_service(name, extra_env=tracing) for name in SERVICE_NAMES}
        await asyncio.gather(*(p.wait_ready(timeout_s=120) for p in processes.values()))
        await seed_catalog_via(processes["catalog"])

        body = encode(order_body("TRACE-KAFKA-1"))
        headers = {**signed_headers(body), "traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"}
        async with httpx.AsyncClient(base_url=processes["orders"].url) as client:
            response = await client.post("/v1/webhooks/direct", content=body, headers=headers)
        assert response.status_code == 202, response.text

        expected = {f"vuonminh-{name}" for name in _services_on_an_orders_path()}
        assert {"vuonminh-orders", "vuonminh-logistics", "vuonminh-analytics"} <= expected

        async def every_process_exported():
            found = {service for service, _ in collector.of_trace(TRACE_ID)}
            return found if expected <= found else None

        await eventually(every_process_exported, timeout_s=60, interval_s=0.5)
        spans = collector.of_trace(TRACE_ID)
        ids = {span.span_id for _, span in spans}
        # SERVER = 2, CONSUMER = 5 in OTLP's SpanKind.
        servers = [span for service, span in spans if span.kind == 2 and service == "vuonminh-orders"]
        assert servers and servers[0].parent_span_id.hex() == PARENT_SPAN_ID
        consumers = [(service, span) for service, span in spans if span.kind == 5]
        assert {service for service, _ in consumers} >= expected
        for service, span in consumers:  # a chain through Kafka's headers: every parent is in the trace
            assert span.parent_span_id in ids, (service, span.name)
    finally:
        collector.server.shutdown()
