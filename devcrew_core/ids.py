"""Identifier validation shared by models, stores and the CLI.

IDs end up inside store keys, SQL parameters and file names, so they are restricted to
a small alphabet that can never alias another key or act as a pattern, and an ID made
only of dots (``.``, ``..``) is refused so it can never name a directory.
"""

from __future__ import annotations

import re

from devcrew_core.errors import DefinitionError

ID_PATTERN = re.compile(r"(?!\.+$)[A-Za-z0-9._-]{1,128}")
ID_RULE = "1-128 characters from A-Z a-z 0-9 . _ -, not only dots"
#: :data:`ID_PATTERN` for a string of at most :data:`ID_MAX_LENGTH` characters, without
#: the look-ahead (which pydantic's Rust regex engine lacks): at least one is not a dot.
ID_PATTERN_WITHOUT_LOOKAHEAD = r"^[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*$"
ID_MAX_LENGTH = 128
#: The ``type`` of a model's validation error for a string that is not a valid ID.
INVALID_ID_ERROR = "invalid_id"
_SHOWN_CHARS = 200


def invalid_id_message(value: object) -> str:
    """The error text for an invalid ID, shortening huge values so it stays readable."""
    if isinstance(value, str) and len(value) > _SHOWN_CHARS:
        shown = f"{value[:40]!r}... ({len(value)} characters)"
    else:
        shown = repr(value)
    return f"invalid ID {shown} (expected {ID_RULE})"


def validate_id(value: object, field: str = "id") -> str:
    """Return ``value`` if it is a valid devcrew ID, else raise :class:`DefinitionError`.

    >>> validate_id("backend-dev-001", "agent_id")
    'backend-dev-001'
    """
    if not isinstance(value, str) or ID_PATTERN.fullmatch(value) is None:
        raise DefinitionError(f"{field}: {invalid_id_message(value)}")
    return value


def validate_optional_id(value: object, field: str = "id") -> str | None:
    """``value`` checked by :func:`validate_id`, or None for no value (a listing's
    filter left out)."""
    return None if value is None else validate_id(value, field)
