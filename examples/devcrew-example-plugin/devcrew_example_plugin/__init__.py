"""An example third-party devcrew plugin.

It implements two hooks:

* :func:`devcrew_scorers` adds the ``prefer-idle`` scorer, which ranks eligible agents
  by how many of their task slots are free (select it with ``scorer: prefer-idle``);
* :func:`devcrew_notifiers` adds the ``jsonl-file`` notifier, which appends every
  notification as one JSON line to the file named by ``DEVCREW_EXAMPLE_NOTIFY_FILE``.

devcrew finds this module through the ``devcrew`` entry point in ``pyproject.toml``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from devcrew_core import ConfigError, hookimpl
from devcrew_core.plugin_types import Notification, Notifier, Scorer

if TYPE_CHECKING:
    from devcrew_core import TaskRequest
    from devcrew_core.stores.records import AgentRecord

#: The environment variable naming the file the ``jsonl-file`` notifier appends to.
NOTIFY_FILE_ENV = "DEVCREW_EXAMPLE_NOTIFY_FILE"


def free_slot_ratio(request: TaskRequest, agent: AgentRecord) -> float:
    """Score ``agent`` by the share of its task slots that are free, in [0, 1].

    ``1 - current_load / max_concurrent_tasks``: an idle agent scores 1.0 and a full
    one 0.0, so the least-loaded agent (relative to its capacity) ranks first. The
    request is not used: every agent the scorer sees is already eligible for it.
    """
    free = 1.0 - agent.current_load / agent.max_concurrent_tasks
    return min(max(free, 0.0), 1.0)


def append_json_line(notification: Notification) -> None:
    """Append ``notification`` as one JSON object on one line to the notify file.

    The file is named by ``$DEVCREW_EXAMPLE_NOTIFY_FILE`` and created when missing.
    Values the payload holds that JSON cannot represent are written as strings.

    :raises ConfigError: when ``DEVCREW_EXAMPLE_NOTIFY_FILE`` is unset or empty.
    """
    target = os.environ.get(NOTIFY_FILE_ENV, "")
    if not target:
        raise ConfigError(
            f"notifier 'jsonl-file': set {NOTIFY_FILE_ENV} to the file to append to"
        )
    line = json.dumps(dataclasses.asdict(notification), default=str, sort_keys=True)
    # One write of a whole line in append mode, so concurrent writers do not interleave.
    with Path(target).open("a", encoding="utf-8") as stream:
        stream.write(line + "\n")


@hookimpl
def devcrew_scorers() -> Iterator[Scorer]:
    """The ``prefer-idle`` scorer."""
    yield Scorer(
        name="prefer-idle",
        score=free_slot_ratio,
        description="rank agents by their share of free task slots",
    )


@hookimpl
def devcrew_notifiers() -> Iterator[Notifier]:
    """The ``jsonl-file`` notifier."""
    yield Notifier(
        name="jsonl-file",
        notify=append_json_line,
        description=f"append each notification as a JSON line to ${NOTIFY_FILE_ENV}",
    )
