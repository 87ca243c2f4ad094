"""docs/events.md names every event type, topic and payload field declared in shared/events."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from vuonminh.shared.events import EventPayload, Topic, all_event_types

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _section(doc: str, event_type: str) -> str:
    """From the heading that names the type to the next heading of the same or a higher level."""
    lines = doc.splitlines()
    for start, line in enumerate(lines):
        match = HEADING.match(line)
        if match and event_type in match.group(2):
            level = len(match.group(1))
            end = len(lines)
            for i in range(start + 1, len(lines)):
                other = HEADING.match(lines[i])
                if other and len(other.group(1)) <= level:
                    end = i
                    break
            return "\n".join(lines[start:end])
    raise AssertionError(f"docs/events.md has no heading naming {event_type}")


def _field_rows(text: str) -> set[str]:
    """Field names that open a table row: | `name` | ..."""
    return set(re.findall(r"^\|\s*`([A-Za-z_][A-Za-z0-9_]*)`\s*\|", text, flags=re.MULTILINE))


def _nested_models(annotation: object) -> set[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {annotation}
    found: set[type[BaseModel]] = set()
    for arg in typing.get_args(annotation):
        if arg is not Ellipsis and not isinstance(arg, (str, int, types.NoneType)):
            found |= _nested_models(arg)
    return found


def test_doc_exists() -> None:
    assert DOC.is_file(), f"{DOC} is missing"


@pytest.mark.parametrize("topic", [t.value for t in Topic])
def test_every_topic_is_documented(topic: str) -> None:
    assert f"`{topic}`" in _doc(), f"topic {topic} is not in docs/events.md"


@pytest.mark.parametrize("event_type", sorted(all_event_types()))
def test_every_event_type_is_documented(event_type: str) -> None:
    payload: type[EventPayload] = all_event_types()[event_type]
    doc = _doc()
    assert event_type in doc
    assert str(payload.TOPIC) in doc
    section = _section(doc, event_type)
    assert str(payload.TOPIC) in section, f"the {event_type} section does not name its topic {payload.TOPIC}"
    missing = set(payload.model_fields) - _field_rows(section)
    assert not missing, f"the {event_type} section has no table row for {sorted(missing)}"


def test_every_nested_field_is_documented() -> None:
    nested: set[type[BaseModel]] = set()
    todo = [m for m in all_event_types().values()]
    while todo:
        model = todo.pop()
        for info in model.model_fields.values():
            for found in _nested_models(info.annotation) - nested:
                nested.add(found)
                todo.append(found)
    rows = _field_rows(_doc())
    missing = {f"{m.__name__}.{name}" for m in nested for name in m.model_fields if name not in rows}
    assert not missing, f"docs/events.md has no table row for {sorted(missing)}"
