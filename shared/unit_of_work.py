"""One database transaction of one service, with the events it publishes (via the outbox)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from vuonminh.shared.events import Envelope, EventPayload


class UnitOfWork:
    """Handed to commands and event handlers: the session, and `publish` to stage events.

    Staged events reach the outbox table when the transaction commits, never before.
    """

    def __init__(self, session: AsyncSession, *, service: str, caused_by: Envelope | None = None) -> None:
        self.session = session
        self.service = service
        self.caused_by = caused_by
        self.staged: list[Envelope] = []

    def publish(
        self,
        payload: EventPayload,
        *,
        event_id: str | None = None,
        correlation_id: str | None = None,
        caused_by: Envelope | None = None,
    ) -> Envelope:
        """Stage an event. `correlation_id` names the flow it belongs to when that is not the
        causing event's (e.g. a parked order decided when a catalog event arrives); `caused_by`
        names the causing event when a batch handler applies several at once."""
        envelope = Envelope.new(
            payload,
            source=f"/vuonminh/{self.service}",
            event_id=event_id,
            caused_by=caused_by or self.caused_by,
            correlation_id=correlation_id,
        )
        self.staged.append(envelope)
        return envelope
