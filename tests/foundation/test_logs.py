"""The JSON log line: valid JSON, UTC timestamps, request context, tracebacks."""

from __future__ import annotations

import io
import json
import logging

from app.foundation.logs import JsonFormatter, RequestContextFilter, request_context


def _format_one(emit: object) -> dict[str, object]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContextFilter())
    logger = logging.getLogger("tests.logging")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        emit(logger)  # type: ignore[operator]
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    parsed: dict[str, object] = json.loads(stream.getvalue())
    return parsed


def test_line_has_time_level_logger_message_and_extras() -> None:
    line = _format_one(lambda log: log.warning("hello %s", "world", extra={"user_id": 7}))

    assert line["message"] == "hello world"
    assert line["level"] == "WARNING"
    assert line["logger"] == "tests.logging"
    assert line["user_id"] == 7
    assert str(line["time"]).endswith("Z")


def test_line_carries_the_request_context_when_set() -> None:
    token = request_context.set({"request_id": "r-1", "method": "GET", "route": "/x"})
    try:
        line = _format_one(lambda log: log.info("inside"))
    finally:
        request_context.reset(token)

    assert (line["request_id"], line["method"], line["route"]) == ("r-1", "GET", "/x")
    assert "request_id" not in _format_one(lambda log: log.info("outside"))


def test_exceptions_are_one_line_with_the_traceback() -> None:
    def emit(log: logging.Logger) -> None:
        try:
            raise ValueError("bad")
        except ValueError:
            log.exception("failed")

    line = _format_one(emit)

    assert "Traceback" in str(line["exc_info"])
    assert "ValueError: bad" in str(line["exc_info"])
