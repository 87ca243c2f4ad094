"""Events about access: the audit trail of writes made through the services' APIs."""

from __future__ import annotations

from typing import ClassVar

from vuonminh.shared.events.base import EventPayload
from vuonminh.shared.events.topics import Topic
from vuonminh.shared.events.types import UtcDatetime


class WriteAudited(EventPayload):
    """Who changed what, when, through a service's API (written in the same transaction as the change)."""

    TYPE: ClassVar[str] = "vuonminh.access.write_audited.v1"
    TOPIC: ClassVar[str] = Topic.AUDIT

    service: str
    action: str  # e.g. "register_seller", "list_product"
    target_type: str  # e.g. "seller", "product"
    target_id: str
    outcome: str  # "created", "updated", "unchanged" (an identical retry)
    actor_role: str
    actor_subject: str
    credential_id: str  # the API key id or token id that authenticated the caller
    at: UtcDatetime

    def aggregate_id(self) -> str:
        return f"{self.target_type}:{self.target_id}"
