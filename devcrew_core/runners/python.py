"""The ``python`` runner: call a Python function with the :class:`TaskCall`.

Two declarations::

    {"kind": "python", "callable": "package.module:function"}   # importable anywhere
    register_local_callable("coder-1", fn)                       # this process only
    -> {"kind": "python", "local": True, "agent_id": "coder-1", "process": "host:4242"}

The function gets one argument, the call, and returns a JSON-serialisable dict (``None``
means ``{}``). Sync functions run in a worker thread so they never block the event loop;
async functions are awaited on it. Cancelling an attempt cancels an async function; a
sync function's thread cannot be killed, so it runs to its end and its result is
discarded.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import re
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any

from devcrew_core.errors import DefinitionError, TaskFailedError
from devcrew_core.ids import validate_id
from devcrew_core.runners import Runner, TaskCall
from devcrew_core.runners.placeholders import check_declaration, option_error, shown

_IMPORT_PATH = re.compile(
    r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*", re.ASCII
)

_local_callables: dict[str, Callable[..., Any]] = {}
_local_lock = threading.Lock()


def this_process() -> str:
    """``"<hostname>:<pid>"``: where a local callable lives."""
    return f"{socket.gethostname()}:{os.getpid()}"


def register_local_callable(agent_id: str, fn: Callable[..., Any]) -> dict[str, Any]:
    """Keep ``fn`` in this process's registry and return the runner declaration for it.

    The declaration records the process, so another process that loads the agent
    (a worker, the CLI) can say clearly why it cannot run it. Registering the same
    ``agent_id`` again replaces the callable.

    >>> spec = register_local_callable("coder-1", lambda call: {"ok": True})
    >>> spec["kind"], spec["local"], spec["agent_id"]
    ('python', True, 'coder-1')
    """
    validate_id(agent_id, "agent_id")
    if not callable(fn):
        raise DefinitionError(f"runner: the local callable for agent {agent_id!r} is not "
                              f"callable (got {shown(fn)})")
    with _local_lock:
        _local_callables[agent_id] = fn
    return {"kind": "python", "local": True, "agent_id": agent_id, "process": this_process()}


def unregister_local_callable(agent_id: str) -> None:
    """Forget the local callable of ``agent_id`` (no error if there is none)."""
    with _local_lock:
        _local_callables.pop(agent_id, None)


def python_runner(spec: Mapping[str, Any]) -> Runner:
    """The factory of the ``python`` runner kind (see the module docstring)."""
    checked = check_declaration(
        spec, "python", required=(), optional=("callable", "local", "agent_id", "process")
    )
    local_keys = [key for key in ("agent_id", "process") if key in checked]
    if checked.get("local", False) is not False:
        local_keys.insert(0, "local")
    if "callable" in checked and local_keys:
        raise DefinitionError(
            "runner: give either 'callable' or 'local' (with agent_id and process), not both "
            f"(got callable and {', '.join(local_keys)})"
        )
    if local_keys:
        return _local_runner(checked)
    if "callable" not in checked:
        raise DefinitionError(
            "runner.callable: required for kind 'python' (missing); give an import path "
            "'package.module:function'"
        )
    target = checked["callable"]
    if not isinstance(target, str) or _IMPORT_PATH.fullmatch(target) is None:
        raise option_error(
            "callable",
            "must be an import path 'package.module:function' (for a function object, "
            "use register_local_callable)",
            target,
        )
    return PythonRunner(target)


def _local_runner(spec: Mapping[str, Any]) -> PythonRunner:
    if spec.get("local") is not True:
        raise option_error("local", "must be true", spec.get("local"))
    agent_id = spec.get("agent_id")
    if not isinstance(agent_id, str):
        raise option_error("agent_id", "must be the agent's ID (a string)", agent_id)
    process = spec.get("process")
    if not isinstance(process, str) or not process:
        raise option_error("process", "must be '<hostname>:<pid>'", process)
    here = this_process()
    with _local_lock:
        fn = _local_callables.get(agent_id) if process == here else None
    if fn is None:
        where = "this process" if process == here else f"process {process}"
        raise DefinitionError(
            f"runner: agent {agent_id!r} runs a Python callable that lives only in {where} "
            f"and is not registered in this one ({here}); declare the agent with an "
            "importable runner {\"kind\": \"python\", \"callable\": \"package.module:function\"}"
            " to run it from any process"
        )
    return PythonRunner(f"local callable of agent {agent_id!r}", fn)


class PythonRunner:
    """Calls one Python function per attempt (imported on first use if given by path)."""

    def __init__(self, target: str, fn: Callable[..., Any] | None = None) -> None:
        self.target = target
        self._fn = fn
        self._async: bool | None = None if fn is None else _is_async(fn)

    def __repr__(self) -> str:
        return f"PythonRunner({self.target!r})"

    async def _resolve(self) -> Callable[..., Any]:
        if self._fn is None:
            # Imports run module code, possibly slow: keep them off the event loop.
            fn = await asyncio.to_thread(_import, self.target)
            self._fn, self._async = fn, _is_async(fn)
        return self._fn

    async def __call__(self, call: TaskCall) -> dict[str, Any]:
        """Run the function for one attempt and return its output dict."""
        fn = await self._resolve()
        try:
            if self._async:
                result = await fn(call)
            else:
                result = await asyncio.to_thread(fn, call)
                if inspect.isawaitable(result):  # e.g. a plain function returning a coroutine
                    result = await result
        except TaskFailedError:
            raise
        except Exception as exc:
            raise TaskFailedError(f"{type(exc).__name__}: {exc}") from exc
        return _output(result, self.target)


def _import(target: str) -> Callable[..., Any]:
    module_name, _, attr_path = target.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
        for attr in attr_path.split("."):
            value = getattr(value, attr)
    except Exception as exc:
        raise TaskFailedError(
            f"runner.callable: cannot import {target!r}: {type(exc).__name__}: {exc}",
            retryable=False,
        ) from exc
    if not callable(value):
        raise TaskFailedError(
            f"runner.callable: {target!r} is not callable (got {shown(value)})",
            retryable=False,
        )
    fn: Callable[..., Any] = value
    return fn


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def _output(result: object, target: str) -> dict[str, Any]:
    """The attempt's output: a detached, JSON-normalised copy of the returned dict."""
    if result is None:
        return {}
    if not isinstance(result, dict):
        raise TaskFailedError(
            f"{target} must return a dict (or None), got {type(result).__name__}: "
            f"{shown(result)}",
            retryable=False,
        )
    try:
        text = json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TaskFailedError(
            f"{target} returned a dict that is not JSON-serialisable: {exc}", retryable=False
        ) from exc
    output: dict[str, Any] = json.loads(text)
    return output
