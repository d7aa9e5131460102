"""JSON logging with request and trace ids; personal data is never logged."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

__all__ = ["PERSONAL_FIELDS", "ContextFilter", "request_id_var", "setup_logging"]

request_id_var: ContextVar[str | None] = ContextVar("crm_request_id", default=None)

#: Extra fields that are dropped from every record, whatever a caller passes.
PERSONAL_FIELDS = frozenset(
    {"email", "phone", "first_name", "last_name", "full_name", "birthday", "address", "ip_address"}
)


class ContextFilter(logging.Filter):
    """Adds service, request id and trace ids; removes personal fields."""

    def __init__(self, service: str) -> None:
        """Remember the service name stamped on each record."""
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        """Enrich (and scrub) ``record``; never drops it."""
        record.service = self.service
        record.request_id = request_id_var.get()
        ctx = trace.get_current_span().get_span_context()
        record.trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else None
        record.span_id = format(ctx.span_id, "016x") if ctx.is_valid else None
        for key in PERSONAL_FIELDS & record.__dict__.keys():
            setattr(record, key, "[redacted]")
        record.__dict__.pop("color_message", None)  # uvicorn's ANSI copy of the message
        return True


def setup_logging(service: str, level: str = "INFO", *, stream: Any = None) -> logging.Handler:
    """Route the root logger to one JSON handler on stderr (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_crm", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._crm = True  # type: ignore[attr-defined]
    handler.addFilter(ContextFilter(service))
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
        )
    )
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler
