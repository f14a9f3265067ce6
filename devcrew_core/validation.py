"""Turn pydantic validation errors into one readable line naming source, field and value."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import ValidationError

from devcrew_core.ids import INVALID_ID_ERROR, invalid_id_message


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(root)"


def _mentions_secret(loc: tuple[int | str, ...], value: Any, secrets: Collection[str]) -> bool:
    """True when the failing field, or a mapping given as its value, holds a secret."""
    if any(isinstance(part, str) and part in secrets for part in loc):
        return True
    return isinstance(value, dict) and any(key in secrets for key in value)


def describe_validation_error(
    error: ValidationError,
    source: str | None = None,
    prefix: str = "",
    secret_fields: Collection[str] = (),
) -> str:
    """``"wf.yaml: tasks[1].timeout: Input should be greater than 0 (got -5)"``; several
    problems are joined with ``"; "``. The value of a field named in ``secret_fields``
    (at any depth) is never shown."""
    parts = []
    for item in error.errors():
        loc = tuple(item["loc"])
        field = _location(loc)
        if prefix:
            field = f"{prefix}.{field}" if field != "(root)" else prefix
        message = str(item["msg"]).removeprefix("Value error, ")
        value: Any = item.get("input")
        if item["type"] == INVALID_ID_ERROR:
            message = invalid_id_message(value)  # quotes the value (shortened if huge)
        if _mentions_secret(loc, value, secret_fields):
            shown = "" if item["type"] == "missing" else " (value hidden)"
        elif item["type"] == "missing" or (isinstance(value, str) and repr(value) in message):
            shown = ""  # nothing to show, or the message already quotes the value
        else:
            shown = f" (got {value!r})"
        if len(shown) > 120:
            shown = shown[:117] + "...)"
        parts.append(f"{field}: {message}{shown}")
    head = f"{source}: " if source else ""
    return head + "; ".join(parts)
