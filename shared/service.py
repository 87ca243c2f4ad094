"""What a service declares about itself; the runtime wires it the same way in every mode."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import MetaData, Table

from vuonminh.shared.auth import CREDENTIALS_TABLE, credentials_table
from vuonminh.shared.inbox import BatchHandler, Handler, processed_events_table
from vuonminh.shared.outbox import outbox_table

if TYPE_CHECKING:
    from vuonminh.shared.runtime import ServiceRuntime

# A loop a service runs in the background: started with the service, cancelled when it stops.
# It must survive its own errors: if it returns or raises, /healthz fails.
BackgroundJob = Callable[["ServiceRuntime"], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    # The service's own tables; `outbox` and `processed_events` are added to them here.
    metadata: MetaData
    router: APIRouter
    # topic -> {event type -> handler}; one consumer group per service reads them all. A BatchHandler
    # takes a run of consecutive events of its type at once (multi-row statements).
    subscriptions: Mapping[str, Mapping[str, Handler | BatchHandler]] = field(default_factory=dict)
    # Bodies that routes read raw (a signature covers their bytes), named in the API docs.
    raw_body_models: tuple[type[BaseModel], ...] = ()
    # What the HTTP API needs to serve (readiness of the api part): "database" and/or "log".
    api_needs: frozenset[str] = frozenset({"database"})
    # Loops beside the consumer (the worker part, e.g. a periodic sweep) ...
    background: tuple[BackgroundJob, ...] = ()
    # ... and loops the HTTP API needs (e.g. a cache its routes read).
    api_background: tuple[BackgroundJob, ...] = ()

    def __post_init__(self) -> None:
        # Every service's database holds its outbox and its inbox beside its business tables,
        # so one transaction covers the effect and its messages.
        # The credential records (shared/auth.py) too: each service checks callers on its own.
        for name, define in (
            ("outbox", outbox_table),
            ("processed_events", processed_events_table),
            (CREDENTIALS_TABLE, credentials_table),
        ):
            if name not in self.metadata.tables:
                define(self.metadata)

    @property
    def outbox(self) -> Table:
        return self.metadata.tables["outbox"]

    @property
    def processed_events(self) -> Table:
        return self.metadata.tables["processed_events"]

    @property
    def consumer_group(self) -> str:
        return f"vuonminh.{self.name}"
