"""Structured logs (structlog): key=value on a terminal, JSON lines in a cluster."""

from __future__ import annotations

import logging
import sys
import time

import structlog
from opentelemetry import trace


def add_trace_ids(_logger: object, _method: str, event_dict: dict) -> dict:
    """The trace and span a line was written in (when a span is current), to find its trace."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", f"{context.trace_id:032x}")
        event_dict.setdefault("span_id", f"{context.span_id:016x}")
    return event_dict


def configure_logging(*, level: str = "INFO", json: bool = False) -> None:
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    # aiokafka reports every reconnect attempt at INFO/ERROR; our own logs say what matters, and a
    # broker that is down for a minute must not write thousands of identical lines.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # On the handlers: a logger's own filter would miss records of its children (aiokafka.consumer...).
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(RepeatFilter(window_s=30.0, only_under="aiokafka"))
    logging.getLogger("httpx").setLevel(logging.WARNING)


class RepeatFilter(logging.Filter):
    """Lets one line of each message template through per window, saying how many it held back."""

    def __init__(self, window_s: float, only_under: str = "") -> None:
        super().__init__()
        self.window_s = window_s
        self.only_under = only_under
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.only_under):
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        shown_at, held_back = self._last.get(key, (float("-inf"), 0))
        if now - shown_at < self.window_s:
            self._last[key] = (shown_at, held_back + 1)
            return False
        if held_back:
            record.msg = f"{record.msg} (and {held_back} more like it in the last {self.window_s:.0f} s)"
        self._last[key] = (now, 0)
        return True
