"""The event contracts, from `shared/events/`: an AsyncAPI 3.0 document and schema snapshots.

`docs/asyncapi.json` describes every topic, message and payload for partners and tools; the
snapshots in `shared/events/schemas/` freeze each versioned type, so a change that would break a
reader within a version fails a test instead of a consumer in production.

Regenerate both after a compatible change (a new optional field, a new type):
    python -m vuonminh.shared.contracts write
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from vuonminh.shared.events import ALL_TOPICS, all_event_types
from vuonminh.shared.events.base import EventPayload
from vuonminh.shared.events.envelope import CONTENT_TYPE, SPEC_VERSION
from vuonminh.shared.runtime import SERVICE_NAMES, load_service

ASYNCAPI_VERSION = "3.0.0"


def payload_schema(payload: type[EventPayload]) -> dict[str, Any]:
    return payload.model_json_schema(ref_template="#/components/schemas/{model}")


def snapshot_name(event_type: str) -> str:
    return f"{event_type}.json"


def snapshots_dir() -> Path:
    return Path(str(resources.files("vuonminh.shared.events").joinpath("schemas")))


def _resolved(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its local $defs inlined, so two versions compare field by field."""
    defs = schema.get("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items() if key != "$defs"}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return inline(schema)


def breaking_changes(frozen: dict[str, Any], current: dict[str, Any], path: str = "") -> list[str]:
    """What in `current` breaks a reader or writer of `frozen` within one version.

    Old events must stay readable by new code and new events by old code, so a field may not be
    removed, retyped or re-constrained, and no field may become required; only optional fields
    may be added (readers ignore fields they do not know).
    """
    frozen, current = _resolved(frozen), _resolved(current)
    problems: list[str] = []
    old_props, new_props = frozen.get("properties", {}), current.get("properties", {})
    for name, old in old_props.items():
        where = f"{path}{name}"
        if name not in new_props:
            problems.append(f"{where}: removed")
        elif _without_titles(old) != _without_titles(new_props[name]):
            problems.append(f"{where}: changed from {json.dumps(old)} to {json.dumps(new_props[name])}")
    newly_required = set(current.get("required", [])) - set(frozen.get("required", []))
    problems.extend(f"{path}{name}: now required" for name in sorted(newly_required))
    return problems


def _without_titles(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_titles(v) for k, v in node.items() if k not in ("title", "description")}
    if isinstance(node, list):
        return [_without_titles(item) for item in node]
    return node


def _cloudevents_headers() -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "type": "object",
        "description": "CloudEvents 1.0, Kafka protocol binding, binary mode: attributes as ce_* headers",
        "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time"],
        "properties": {
            "ce_specversion": {"const": SPEC_VERSION},
            "ce_id": {**text, "description": "event id; consumers deduplicate on it"},
            "ce_source": {**text, "description": "/vuonminh/<service>"},
            "ce_type": {**text, "description": "vuonminh.<service>.<event>.v<N>"},
            "ce_subject": {**text, "description": "the aggregate id, also the record key"},
            "ce_time": {**text, "format": "date-time"},
            "ce_correlationid": {**text, "description": "the business flow (one order end to end)"},
            "ce_causationid": {**text, "description": "the event that caused this one"},
            "traceparent": {**text, "description": "W3C trace context of the span that published the event"},
            "content-type": {"const": CONTENT_TYPE},
        },
    }


def asyncapi_document() -> dict[str, Any]:
    """AsyncAPI 3.0: a channel per topic, a message per event type, who sends and who receives."""
    types = all_event_types()
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    for topic in ALL_TOPICS:
        channels[_channel_id(topic)] = {"address": topic, "messages": {}}
    for event_type, payload in sorted(types.items()):
        schema = payload_schema(payload)
        schemas.update(schema.pop("$defs", {}))
        schemas[payload.__name__] = schema
        message_id = _message_id(event_type)
        messages[message_id] = {
            "name": event_type,
            "title": payload.__name__,
            "summary": (payload.__doc__ or payload.__name__).strip().splitlines()[0],
            "contentType": CONTENT_TYPE,
            "headers": {"$ref": "#/components/schemas/CloudEventHeaders"},
            "payload": {"$ref": f"#/components/schemas/{payload.__name__}"},
            "bindings": {"kafka": {"key": {"type": "string", "description": "the aggregate id"}}},
        }
        channels[_channel_id(payload.TOPIC)]["messages"][message_id] = {"$ref": f"#/components/messages/{message_id}"}
    schemas["CloudEventHeaders"] = _cloudevents_headers()
    operations: dict[str, Any] = {}
    for event_type, payload in sorted(types.items()):
        producer = event_type.split(".")[1]
        operations[f"{producer}.send.{_message_id(event_type)}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{_channel_id(payload.TOPIC)}"},
            "messages": [{"$ref": f"#/channels/{_channel_id(payload.TOPIC)}/messages/{_message_id(event_type)}"}],
        }
    for service in SERVICE_NAMES:
        for topic, handlers in load_service(service).subscriptions.items():
            handled = [t for t in sorted(handlers) if t in types]
            operations[f"{service}.receive.{_channel_id(topic)}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{_channel_id(topic)}"},
                "messages": [{"$ref": f"#/channels/{_channel_id(topic)}/messages/{_message_id(t)}"} for t in handled],
            }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "VươnMình events",
            "version": "1.0.0",
            "description": "Every topic and event of the platform; see docs/events.md for the rules.",
        },
        "defaultContentType": CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _channel_id(topic: str) -> str:
    return topic.replace(".", "_")


def _message_id(event_type: str) -> str:
    return event_type.removeprefix("vuonminh.").replace(".", "_")


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write(repo_root: Path) -> None:
    """Writes the AsyncAPI document and the snapshots; refuses a breaking change within a version."""
    target = repo_root / "shared" / "events" / "schemas"
    target.mkdir(exist_ok=True)
    updates: dict[Path, str] = {}
    for event_type, payload in sorted(all_event_types().items()):
        path, current = target / snapshot_name(event_type), payload_schema(payload)
        if path.exists():
            problems = breaking_changes(json.loads(path.read_text(encoding="utf-8")), current)
            if problems:
                raise SystemExit(
                    f"{event_type} changed in a way that breaks its readers; declare the next version instead:\n  "
                    + "\n  ".join(problems)
                )
        updates[path] = render(current)
    for path, text in updates.items():
        path.write_text(text, encoding="utf-8")
    (repo_root / "docs" / "asyncapi.json").write_text(render(asyncapi_document()), encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] != ["write"]:
        raise SystemExit("usage: python -m vuonminh.shared.contracts write")
    write(Path.cwd())
