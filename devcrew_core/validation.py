"""Turn pydantic validation errors into one readable line naming source, field and value."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(root)"


def describe_validation_error(
    error: ValidationError, source: str | None = None, prefix: str = ""
) -> str:
    """``"wf.yaml: tasks[1].timeout: Input should be greater than 0 (got -5)"``; several
    problems are joined with ``"; "``."""
    parts = []
    for item in error.errors():
        field = _location(tuple(item["loc"]))
        if prefix:
            field = f"{prefix}.{field}" if field != "(root)" else prefix
        message = str(item["msg"]).removeprefix("Value error, ")
        value: Any = item.get("input")
        shown = "" if item["type"] == "missing" else f" (got {value!r})"
        if len(shown) > 120:
            shown = shown[:117] + "...)"
        parts.append(f"{field}: {message}{shown}")
    head = f"{source}: " if source else ""
    return head + "; ".join(parts)
