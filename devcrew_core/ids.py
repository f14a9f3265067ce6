"""Identifier validation shared by models, stores and the CLI.

IDs end up inside store keys, SQL parameters and file names, so they are restricted to
a small alphabet that can never alias another key or act as a pattern.
"""

from __future__ import annotations

import re

from devcrew_core.errors import DefinitionError

ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")
ID_RULE = "1-128 characters from A-Z a-z 0-9 . _ -"


def validate_id(value: object, field: str = "id") -> str:
    """Return ``value`` if it is a valid devcrew ID, else raise :class:`DefinitionError`.

    >>> validate_id("backend-dev-001", "agent_id")
    'backend-dev-001'
    """
    if not isinstance(value, str) or ID_PATTERN.fullmatch(value) is None:
        raise DefinitionError(f"{field}: invalid ID {value!r} (expected {ID_RULE})")
    return value
