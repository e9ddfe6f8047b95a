"""Log lines an operator can follow one session's story through: text for people, JSON for tools.

In JSON each line is one object: `ts`, `level`, `logger`, `message`, the ids of what the line
is about (`request_id` and `correlation_id` of the OCPI request being served, and `site_id`,
`session_id`, `plan_id`, ... given as `extra=`), and `exc` for a traceback. So
`jq 'select(.session_id == "s1")'` tells what happened to session s1.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

__all__ = ["LOG_FORMATS", "JsonFormatter", "TextFormatter", "configure_logging", "log_context"]

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_CONTEXT: ContextVar[dict[str, str]] = ContextVar("ems_log_context", default={})  # noqa: B039
"""Ids every line logged while serving one request carries (never mutated: replaced)."""

_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


@contextmanager
def log_context(**ids: str) -> Iterator[None]:
    """Ids added to every line logged inside, in this thread or task and what it hands work to."""
    token = _CONTEXT.set({**_CONTEXT.get(), **ids})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_CONTEXT.get(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                line[key] = (
                    value if isinstance(value, str | int | float | bool) or value is None else str(value)
                )
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Text lines get the request's ids appended, so a grep finds them there too."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = _CONTEXT.get()
        return f"{text} [{' '.join(f'{k}={v}' for k, v in ids.items())}]" if ids else text


def configure_logging(level: str, log_format: str) -> None:
    """The root logger for a long-running command; uvicorn's loggers propagate to it."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r}: text or json")
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
