"""CloudEvents 1.0 envelope in Kafka binary mode: attributes in `ce_*` headers, data as JSON value.

See the CloudEvents Kafka protocol binding. Two extension attributes tie events together:
`correlationid` (the business flow, e.g. one order from webhook to KPI) and `causationid`
(the event that caused this one).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from pydantic import ValidationError

from vuonminh.shared.events.base import EventPayload, payload_class_for
from vuonminh.shared.records import IncomingRecord, OutgoingRecord
from vuonminh.shared.timeutil import utc_now
from vuonminh.shared.tracing import TRACEPARENT, traceparent_for_new_event

SPEC_VERSION = "1.0"
OUR_TYPE_PREFIX = "vuonminh."  # every type we publish: vuonminh.<service>.<event>.v<N>
CONTENT_TYPE = "application/json"

P = TypeVar("P", bound=EventPayload)


class PoisonMessage(Exception):
    """A record no handler can ever process (not a CloudEvent, unknown shape): dead-letter it."""


class UnknownEventType(Exception):
    """One of our events whose type this code does not know yet: a newer producer wrote it during a
    rolling deploy. Not poison: the consumer holds the partition until code that knows it runs."""

    def __init__(self, event_type: str) -> None:
        super().__init__(f"event type {event_type!r} is newer than this code")
        self.event_type = event_type


@dataclass(frozen=True, slots=True)
class Envelope:
    id: str
    type: str
    source: str
    subject: str
    time: datetime
    data: EventPayload
    correlation_id: str
    causation_id: str | None = None
    topic: str = field(default="")
    # W3C trace context of the span the event was published in (shared/tracing.py); not part of
    # the event's identity, carried as the `traceparent` header.
    traceparent: str | None = field(default=None, compare=False)

    @classmethod
    def new(
        cls,
        data: EventPayload,
        *,
        source: str,
        event_id: str | None = None,
        caused_by: Envelope | None = None,
        correlation_id: str | None = None,
    ) -> Envelope:
        event_id = event_id or str(uuid.uuid4())
        if caused_by is not None:
            correlation_id = correlation_id or caused_by.correlation_id
        traceparent = traceparent_for_new_event(
            caused_by.id if caused_by else None, caused_by.traceparent if caused_by else None
        )
        return cls(
            id=event_id,
            type=data.TYPE,
            source=source,
            subject=data.aggregate_id(),
            time=utc_now(),
            data=data,
            correlation_id=correlation_id or event_id,
            causation_id=caused_by.id if caused_by else None,
            topic=str(data.TOPIC),
            traceparent=traceparent,
        )

    def data_as(self, payload_class: type[P]) -> P:
        """The payload, typed: a handler registered for one type reads it without a cast."""
        if not isinstance(self.data, payload_class):
            raise TypeError(f"event {self.id} carries {type(self.data).__name__}, not {payload_class.__name__}")
        return self.data

    def headers(self) -> tuple[tuple[str, bytes], ...]:
        pairs = [
            ("ce_specversion", SPEC_VERSION),
            ("ce_id", self.id),
            ("ce_source", self.source),
            ("ce_type", self.type),
            ("ce_subject", self.subject),
            ("ce_time", self.time.isoformat()),
            ("ce_correlationid", self.correlation_id),
            ("content-type", CONTENT_TYPE),
        ]
        if self.causation_id:
            pairs.append(("ce_causationid", self.causation_id))
        if self.traceparent:
            pairs.append((TRACEPARENT, self.traceparent))
        return tuple((name, value.encode()) for name, value in pairs)

    def to_record(self) -> OutgoingRecord:
        return OutgoingRecord(
            topic=self.topic,
            key=self.subject.encode(),
            value=self.data.model_dump_json().encode(),
            headers=self.headers(),
        )

    @classmethod
    def from_record(cls, record: IncomingRecord) -> Envelope:
        """Parse a record; raises PoisonMessage when it is not one of our events."""
        attrs = {name: value.decode("utf-8", errors="replace") for name, value in record.headers}
        missing = [a for a in ("ce_id", "ce_type", "ce_source", "ce_time") if a not in attrs]
        if missing:
            raise PoisonMessage(f"not a CloudEvent: missing headers {', '.join(missing)}")
        if attrs.get("ce_specversion") != SPEC_VERSION:
            raise PoisonMessage(f"unsupported CloudEvents specversion {attrs.get('ce_specversion')!r}")
        payload_class = payload_class_for(attrs["ce_type"])
        if payload_class is None:
            if attrs["ce_type"].startswith(OUR_TYPE_PREFIX):
                raise UnknownEventType(attrs["ce_type"])
            raise PoisonMessage(f"unknown event type {attrs['ce_type']!r}")
        try:
            data = payload_class.model_validate_json(record.value or b"")
            time = datetime.fromisoformat(attrs["ce_time"])
        except (ValidationError, ValueError) as error:
            raise PoisonMessage(f"invalid {attrs['ce_type']} data: {error}") from error
        return cls(
            id=attrs["ce_id"],
            type=attrs["ce_type"],
            source=attrs["ce_source"],
            subject=attrs.get("ce_subject") or data.aggregate_id(),
            time=time,
            data=data,
            correlation_id=attrs.get("ce_correlationid") or attrs["ce_id"],
            causation_id=attrs.get("ce_causationid"),
            topic=record.topic,
            traceparent=attrs.get(TRACEPARENT),
        )
