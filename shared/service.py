"""What a service declares about itself; the runtime wires it the same way in every mode."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fastapi import APIRouter
from sqlalchemy import MetaData

from vuonminh.shared.inbox import Handler


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    # The service's own tables; the runtime adds `outbox` and `processed_events` to it.
    metadata: MetaData
    router: APIRouter
    # topic -> {event type -> handler}; one consumer group per service reads them all.
    subscriptions: Mapping[str, Mapping[str, Handler]] = field(default_factory=dict)

    @property
    def consumer_group(self) -> str:
        return f"vuonminh.{self.name}"
