"""Placeholder templates and declaration checks shared by the built-in runners.

A template is a string such as ``"--feature={input.feature}"``. It is parsed when the
runner is declared (so a malformed one is a :class:`DefinitionError` before anything
runs) and rendered once per attempt from the :class:`~devcrew_core.runners.TaskCall`.

Placeholders::

    {input}  {input.feature}  {input.files.0}        the task's input
    {upstream.write-tests.path}                      an upstream task's output
    {context.state.coverage}                         the handed-over AgentContext
    {task_id} {workflow_id} {run_id} {agent_id} {attempt} {idempotency_key}

``{{`` and ``}}`` are literal braces. A key containing dots is found too
(``{upstream.v1.2.path}`` looks up ``"v1.2"`` if there is no ``"v1"``); a number
indexes a list. Strings are inserted as they are; every other value as compact JSON
(``true``, ``false``, ``null``, ``3``, ``{"a":1}``).

Rendering a template only ever produces one string: the command runner renders each
argv element separately, so a value is part of exactly one argument, whatever it holds.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devcrew_core.errors import DefinitionError, TaskFailedError

if TYPE_CHECKING:
    from devcrew_core.runners import TaskCall

#: Roots whose value is a JSON object that a path may walk into.
STRUCTURED_ROOTS = ("input", "upstream", "context")
#: Roots whose value is a scalar (a path below them is an error).
SCALAR_ROOTS = ("task_id", "workflow_id", "run_id", "agent_id", "attempt", "idempotency_key")
ROOTS = STRUCTURED_ROOTS + SCALAR_ROOTS

_PLACEHOLDER = re.compile(r"(?P<root>[A-Za-z_][A-Za-z0-9_]*)(?P<path>(?:\.[^.{}]+)*)")
_SHOWN_CHARS = 120


# -- declaration checks ------------------------------------------------------------------
def shown(value: object) -> str:
    """``repr(value)``, shortened so an error message stays readable."""
    text = repr(value)
    if len(text) > _SHOWN_CHARS:
        text = f"{text[:_SHOWN_CHARS - 20]}... ({len(text)} characters)"
    return text


def option_error(option: str, requirement: str, value: object, *, hide: bool = False) -> (
        DefinitionError):
    """``runner.<option>: <requirement> (got <value>)``; ``hide`` shows only the type."""
    got = f"a value of type {type(value).__name__}, hidden" if hide else shown(value)
    return DefinitionError(f"runner.{option}: {requirement} (got {got})")


def check_declaration(
    spec: object, kind: str, required: Collection[str], optional: Collection[str]
) -> Mapping[str, Any]:
    """Check a runner declaration's shape: a mapping of this ``kind`` with only known
    options and every required one. Returns it as a mapping."""
    if not isinstance(spec, Mapping):
        raise DefinitionError(
            f"runner: must be a mapping with 'kind' (got {shown(spec)})"
        )
    if spec.get("kind") != kind:
        raise DefinitionError(
            f"runner.kind: this is the {kind!r} runner (got {shown(spec.get('kind'))})"
        )
    known = {"kind", *required, *optional}
    for key in spec:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DefinitionError(
                f"runner: unknown option {shown(key)} for kind {kind!r} "
                f"(known: {', '.join(sorted(known))}){hint}"
            )
    for key in required:
        if key not in spec:
            raise DefinitionError(f"runner.{key}: required for kind {kind!r} (missing)")
    return spec


def positive_number(option: str, value: object, *, allow_zero: bool = False) -> float:
    """``value`` as a float if it is a positive (or, with ``allow_zero``, >= 0) number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and (number > 0 or (allow_zero and number == 0)):
            return number
    what = "a number >= 0" if allow_zero else "a number > 0"
    raise option_error(option, f"must be {what}", value)


# -- templates ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Placeholder:
    """One ``{root.path...}`` inside a template."""

    text: str
    root: str
    path: tuple[str, ...]


@dataclass(frozen=True)
class Template:
    """A parsed string with placeholders; ``where`` names it in errors (``runner.cwd``)."""

    source: str
    where: str
    parts: tuple[str | Placeholder, ...]

    @classmethod
    def parse(cls, source: str, where: str) -> Template:
        """Parse ``source``; a malformed template raises :class:`DefinitionError`."""
        parts: list[str | Placeholder] = []
        literal: list[str] = []
        i, n = 0, len(source)
        while i < n:
            char = source[i]
            if char in "{}" and source.startswith(char * 2, i):
                literal.append(char)
                i += 2
                continue
            if char == "}":
                raise DefinitionError(
                    f"{where}: single '}}' at position {i} in {shown(source)}; "
                    "write '}}}}' for a literal brace"
                )
            if char == "{":
                end = source.find("}", i + 1)
                inner = source[i + 1:end] if end != -1 else ""
                if end == -1 or "{" in inner:
                    raise DefinitionError(
                        f"{where}: unclosed '{{' at position {i} in {shown(source)}; "
                        "write '{{{{' for a literal brace"
                    )
                if literal:
                    parts.append("".join(literal))
                    literal = []
                parts.append(_parse_placeholder(inner, source, where))
                i = end + 1
                continue
            literal.append(char)
            i += 1
        if literal:
            parts.append("".join(literal))
        return cls(source=source, where=where, parts=tuple(parts))

    @property
    def placeholders(self) -> tuple[Placeholder, ...]:
        """The placeholders in order of appearance."""
        return tuple(part for part in self.parts if isinstance(part, Placeholder))

    def render(self, values: Mapping[str, Any]) -> str:
        """The string for one attempt. A missing key raises a non-retryable
        :class:`TaskFailedError` naming the placeholder (a retry sees the same data)."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                out.append(self._text_of(part, values))
        return "".join(out)

    def _text_of(self, placeholder: Placeholder, values: Mapping[str, Any]) -> str:
        value = values[placeholder.root]
        label = placeholder.root
        path = placeholder.path
        i = 0
        while i < len(path):
            value, used = _step(value, path, i, f"{self.where}: placeholder "
                                f"{{{placeholder.text}}}: {label}")
            label += "." + ".".join(path[i:i + used])
            i += used
        if isinstance(value, str):
            return value
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise TaskFailedError(
                f"{self.where}: placeholder {{{placeholder.text}}}: value is not "
                f"JSON-serialisable ({exc})", retryable=False
            ) from exc


def _parse_placeholder(inner: str, source: str, where: str) -> Placeholder:
    match = _PLACEHOLDER.fullmatch(inner)
    if match is None:
        raise DefinitionError(
            f"{where}: {{{inner}}} in {shown(source)} is not a placeholder "
            f"(expected {{name}} or {{name.key...}} with name one of {', '.join(ROOTS)}); "
            "write '{{' and '}}' for literal braces"
        )
    root = match.group("root")
    path = tuple(match.group("path").split(".")[1:])
    if root not in ROOTS:
        close = difflib.get_close_matches(root, ROOTS, n=1)
        hint = f"; did you mean {{{close[0]}}}?" if close else ""
        raise DefinitionError(
            f"{where}: unknown placeholder {{{inner}}} in {shown(source)} "
            f"(known: {', '.join(ROOTS)}){hint}"
        )
    if path and root in SCALAR_ROOTS:
        raise DefinitionError(
            f"{where}: placeholder {{{inner}}} in {shown(source)}: {{{root}}} is a "
            "plain value and has no keys"
        )
    return Placeholder(text=inner, root=root, path=path)


def _step(value: Any, path: Sequence[str], i: int, where: str) -> tuple[Any, int]:
    """Follow ``path[i]`` (or, for keys with dots, ``path[i:j]`` joined) into ``value``;
    return the new value and how many segments were used."""
    if isinstance(value, Mapping):
        # Longest first, so a key "v1.2" wins over "v1" followed by "2".
        for j in range(len(path), i, -1):
            key = ".".join(path[i:j])
            if key in value:
                return value[key], j - i
        keys = ", ".join(repr(k) for k in list(value)[:10]) or "none"
        more = ", ..." if len(value) > 10 else ""
        raise TaskFailedError(
            f"{where} has no key {path[i]!r} (keys: {keys}{more})", retryable=False
        )
    if isinstance(value, list):
        segment = path[i]
        if segment.isdigit() and int(segment) < len(value):
            return value[int(segment)], 1
        raise TaskFailedError(
            f"{where} is a list of {len(value)} items; {segment!r} is not an index in it",
            retryable=False,
        )
    raise TaskFailedError(
        f"{where} is {type(value).__name__} {shown(value)}, which has no key {path[i]!r}",
        retryable=False,
    )


def call_values(call: TaskCall) -> dict[str, Any]:
    """The value of every placeholder root for one attempt."""
    return {
        "input": call.input,
        "upstream": call.upstream,
        "context": None if call.context is None else call.context.model_dump(mode="json"),
        "task_id": call.task_id,
        "workflow_id": call.workflow_id,
        "run_id": call.run_id,
        "agent_id": call.agent_id,
        "attempt": call.attempt,
        "idempotency_key": call.idempotency_key,
    }
