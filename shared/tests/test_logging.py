import logging

from vuonminh.shared.logging import RepeatFilter


def _record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("aiokafka.client", logging.ERROR, __file__, 1, msg, ("127.0.0.1", 19092, "refused"), None)


def test_a_repeated_message_is_shown_once_per_window_with_a_count():
    gate = RepeatFilter(window_s=0.0)
    assert gate.filter(_record('Unable connect to "%s:%s": %s'))
    slow_gate = RepeatFilter(window_s=3600)
    assert slow_gate.filter(_record('Unable connect to "%s:%s": %s'))
    assert not any(slow_gate.filter(_record('Unable connect to "%s:%s": %s')) for _ in range(100))
    assert slow_gate.filter(_record("another message"))  # other messages are not held back
    slow_gate.window_s = 0.0
    shown = _record('Unable connect to "%s:%s": %s')
    assert slow_gate.filter(shown)
    assert "and 100 more like it" in shown.getMessage()
