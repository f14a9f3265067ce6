"""A cheap test for "this process was forked since": per-process state (a connection,
a cursor) records :func:`generation` when it is made and is not used when it differs.

The counter is bumped in the child by ``os.register_at_fork``: comparing it costs less
than calling ``os.getpid()`` (a system call) on every store call.
"""

from __future__ import annotations

import os

_generation = 0


def generation() -> int:
    """How many forks lie between this process and the one that imported this module."""
    return _generation


def _forked() -> None:
    global _generation
    _generation += 1


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forked)
