"""Agent functions for the ``python`` runner tests, importable as ``runner_agents:<name>``
(the tests directory is on ``sys.path`` under pytest, and on ``PYTHONPATH`` in the
subprocesses the tests start)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from devcrew_core.runners import TaskCall

#: Task IDs whose async agent saw its cancellation.
CANCELLED: list[str] = []
#: Released by the test so the blocking sync agent can finish.
RELEASE = threading.Event()
#: Set by the blocking sync agent when it has started, and when it has finished.
STARTED = threading.Event()
FINISHED = threading.Event()


def sync_echo(call: TaskCall) -> dict[str, Any]:
    """Echo the call, and say which thread ran it."""
    return {
        "task_id": call.task_id,
        "input": call.input,
        "attempt": call.attempt,
        "idempotency_key": call.idempotency_key,
        "thread": threading.current_thread().name,
        "main_thread": threading.current_thread() is threading.main_thread(),
    }


async def async_echo(call: TaskCall) -> dict[str, Any]:
    """Echo the call from a coroutine, and say whether it ran on the event loop."""
    await asyncio.sleep(0)
    return {
        "task_id": call.task_id,
        "input": call.input,
        "on_loop_thread": threading.current_thread() is threading.main_thread(),
    }


class AsyncCallable:
    """An object whose ``__call__`` is a coroutine function."""

    async def __call__(self, call: TaskCall) -> dict[str, Any]:
        return {"from": "AsyncCallable", "task_id": call.task_id}


async_object = AsyncCallable()


def returns_none(call: TaskCall) -> None:
    """Return nothing (the output is then ``{}``)."""


def returns_list(call: TaskCall) -> list[int]:
    """Return the wrong shape."""
    return [1, 2, 3]


def returns_unserialisable(call: TaskCall) -> dict[str, Any]:
    """Return a dict that JSON cannot hold."""
    return {"when": object()}


def returns_nan(call: TaskCall) -> dict[str, Any]:
    """Return a float that strict JSON cannot hold."""
    return {"score": float("nan")}


def returns_tuple_and_int_keys(call: TaskCall) -> dict[Any, Any]:
    """Return values JSON normalises (tuple -> list, int key -> str)."""
    return {"pair": (1, 2), 3: "three"}


def raises_value_error(call: TaskCall) -> dict[str, Any]:
    """Fail like a buggy agent."""
    raise ValueError(f"bad feature {call.input.get('feature')!r}")


async def async_raises(call: TaskCall) -> dict[str, Any]:
    """Fail from a coroutine."""
    raise RuntimeError("async agent broke")


async def waits_forever(call: TaskCall) -> dict[str, Any]:
    """Hang until cancelled, recording the cancellation."""
    try:
        await asyncio.sleep(1000)
    except asyncio.CancelledError:
        CANCELLED.append(call.task_id)
        raise
    return {}


def blocks_until_released(call: TaskCall) -> dict[str, Any]:
    """Block a worker thread until the test sets :data:`RELEASE`."""
    STARTED.set()
    try:
        RELEASE.wait(60)
        return {"released": True}
    finally:
        FINISHED.set()


NOT_CALLABLE = 42
