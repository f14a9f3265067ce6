"""The Lua scripts of the Redis store, loaded from the packaged ``.lua`` files.

Each script is a redis-py :class:`~redis.commands.core.Script`: it runs with EVALSHA
and, when the server answers NOSCRIPT (restarted, ``SCRIPT FLUSH``, failed over), loads
itself with SCRIPT LOAD and runs again. A script is given every key it touches in
``KEYS``; none builds a key name from its arguments. Files whose name starts with ``_``
hold helpers that are prepended to the scripts listed in :data:`HELPERS`.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from devcrew_redis.pinned import PinnedConnections

_PACKAGE = "devcrew_redis.lua"

#: Helper files (without ``.lua``) prepended to a script, by script name.
HELPERS: dict[str, tuple[str, ...]] = {
    "acquire_slots": ("_slots",),
    "delegate": ("_slots", "_append"),
    "complete_delegation": ("_append",),
    "write_batch": ("_append",),
    "allocate": ("_ledger", "_reservations"),
    "release_allocation": ("_ledger",),
    "reserve": ("_ledger", "_reservations"),
    "cancel_reservation": ("_ledger", "_reservations"),
    "expire_reservations": ("_ledger", "_reservations"),
    "find_agents": ("_hmget",),
    "list_indexed": ("_hmget",),
    "read_log": ("_hmget",),
}


def source(name: str) -> str:
    """The full text of script ``name``: its helpers, then its own file."""
    files = resources.files(_PACKAGE)
    parts = [*HELPERS.get(name, ()), name]
    return "".join((files / f"{part}.lua").read_text(encoding="utf-8") for part in parts)


class Scripts:
    """Every script of the store, registered with one client (and its pool)."""

    def __init__(self, client: Redis, pinned: PinnedConnections) -> None:
        self._client = client
        self._pinned = pinned
        self.acquire_slots = self._register("acquire_slots")
        self.release_slots = self._register("release_slots")
        self.transfer_slots = self._register("transfer_slots")
        self.delegate = self._register("delegate")
        self.complete_delegation = self._register("complete_delegation")
        self.find_agents = self._register("find_agents")
        self.write_agent = self._register("write_agent")
        self.delete_agent = self._register("delete_agent")
        self.allocate = self._register("allocate")
        self.release_allocation = self._register("release_allocation")
        self.reserve = self._register("reserve")
        self.cancel_reservation = self._register("cancel_reservation")
        self.expire_reservations = self._register("expire_reservations")
        self.create_run = self._register("create_run")
        self.update_run = self._register("update_run")
        self.put_handoff = self._register("put_handoff")
        self.compare_and_set = self._register("compare_and_set")
        self.write_batch = self._register("write_batch")
        self.read_log = self._register("read_log")
        self.list_indexed = self._register("list_indexed")

    def run(self, script: Script, keys: tuple[str | bytes, ...],
            args: tuple[Any, ...]) -> Any:
        """Run ``script`` with EVALSHA like calling it does, minus the client's
        per-command overhead (the hot paths: allocate, release_allocation, delegate,
        complete_delegation; see :mod:`devcrew_redis.pinned`); on NOSCRIPT the script
        loads itself and runs, as when called."""
        try:
            return self._pinned.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return script(keys=keys, args=args)

    def _register(self, name: str) -> Script:
        return self._client.register_script(source(name))

    def all(self) -> list[Script]:
        """Every registered script."""
        return [value for value in vars(self).values() if isinstance(value, Script)]

    def queue_load(self, pipe: Pipeline) -> None:
        """Queue SCRIPT LOAD of every script on ``pipe``, so that the first calls after
        opening the store need no NOSCRIPT round trip."""
        for script in self.all():
            pipe.script_load(script.script)
