from datetime import UTC, datetime

import pytest

from vuonminh.shared.events import (
    ALL_TOPICS,
    Envelope,
    PoisonMessage,
    SellerRegistered,
    Topic,
    all_event_types,
    dead_letter_topic,
)
from vuonminh.shared.records import IncomingRecord


def _incoming(envelope: Envelope) -> IncomingRecord:
    out = envelope.to_record()
    return IncomingRecord(out.topic, 0, 7, out.key, out.value, out.headers, 0)


def _seller() -> SellerRegistered:
    return SellerRegistered(
        seller_id="s1", name="Hộ Lò Thị Mai", kind="household", province_code="12", ward_code="03390"
    )


def test_round_trip_keeps_attributes_and_payload():
    cause = Envelope.new(_seller(), source="/test", correlation_id="flow-1")
    envelope = Envelope.new(_seller(), source="/vuonminh/catalog", caused_by=cause)
    record = envelope.to_record()

    parsed = Envelope.from_record(_incoming(envelope))

    assert record.topic == Topic.CATALOG_SELLERS
    assert record.key == b"s1"  # the aggregate id is the Kafka key
    assert dict(record.headers)["ce_specversion"] == b"1.0"
    assert parsed.data == envelope.data
    assert (parsed.id, parsed.type, parsed.subject) == (envelope.id, SellerRegistered.TYPE, "s1")
    assert parsed.correlation_id == "flow-1" and parsed.causation_id == cause.id
    assert parsed.time == envelope.time and parsed.time.tzinfo is not None


@pytest.mark.parametrize(
    ("headers", "value", "reason"),
    [
        ((), b"{}", "missing headers"),
        (
            (
                ("ce_specversion", b"1.0"),
                ("ce_id", b"x"),
                ("ce_type", b"nope.v1"),
                ("ce_source", b"/t"),
                ("ce_time", b"2026-01-01T00:00:00+00:00"),
            ),
            b"{}",
            "unknown event type",
        ),
        (
            (
                ("ce_specversion", b"1.0"),
                ("ce_id", b"x"),
                ("ce_type", SellerRegistered.TYPE.encode()),
                ("ce_source", b"/t"),
                ("ce_time", b"2026-01-01T00:00:00+00:00"),
            ),
            b'{"seller_id": 1}',
            "invalid",
        ),
    ],
)
def test_records_that_are_not_our_events_are_poison(headers, value, reason):
    with pytest.raises(PoisonMessage, match=reason):
        Envelope.from_record(IncomingRecord("catalog.sellers", 0, 0, b"k", value, headers, 0))


def test_every_event_type_is_versioned_and_on_a_known_topic():
    types = all_event_types()
    assert len(types) >= 6
    for event_type, payload in types.items():
        assert event_type.startswith("vuonminh.") and event_type.rsplit(".", 1)[1].startswith("v")
        assert payload.TOPIC in ALL_TOPICS
        assert dead_letter_topic(payload.TOPIC) in ALL_TOPICS


def test_naive_timestamps_are_refused():
    from pydantic import TypeAdapter, ValidationError

    from vuonminh.shared.events.types import UtcDatetime

    adapter = TypeAdapter(UtcDatetime)
    with pytest.raises(ValidationError, match="UTC offset"):
        adapter.validate_python("2026-11-20T09:15:00")
    assert adapter.validate_python("2026-11-20T09:15:00+07:00") == datetime(2026, 11, 20, 2, 15, tzinfo=UTC)


def test_typed_payload_access_refuses_another_type():
    from vuonminh.shared.events import OrderPlaced, SellerRegistered

    seller = SellerRegistered(seller_id="s-1", name="Cô Ba", kind="household", province_code="12", ward_code="03390")
    envelope = Envelope.new(seller, source="/test")
    assert envelope.data_as(SellerRegistered) is seller
    with pytest.raises(TypeError, match="not OrderPlaced"):
        envelope.data_as(OrderPlaced)
