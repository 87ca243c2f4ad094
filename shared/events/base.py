"""Base of every event payload, and the registry from CloudEvents type to payload class."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

_REGISTRY: dict[str, type[EventPayload]] = {}


class EventPayload(BaseModel):
    """An event's data. Subclasses set TYPE (with its version), TOPIC and the aggregate id."""

    # Readers ignore fields they do not know, so a producer may add optional fields within a version.
    model_config = ConfigDict(frozen=True, extra="ignore")

    TYPE: ClassVar[str]
    TOPIC: ClassVar[str]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        event_type = cls.__dict__.get("TYPE")
        if event_type:
            if event_type in _REGISTRY:
                raise TypeError(f"event type {event_type} is declared twice")
            _REGISTRY[event_type] = cls

    def aggregate_id(self) -> str:
        """The Kafka key: events about one aggregate stay in order on one partition."""
        raise NotImplementedError


def payload_class_for(event_type: str) -> type[EventPayload] | None:
    return _REGISTRY.get(event_type)


def all_event_types() -> dict[str, type[EventPayload]]:
    return dict(_REGISTRY)
