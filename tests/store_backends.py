"""The store backends the contract suite runs against.

A backend joins the suite by adding one :class:`BackendCase` here (and, if it needs a
server, a fixture that starts one; ``open`` receives pytest's ``request`` to fetch it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from devcrew_core.stores.base import Store
from devcrew_core.stores.memory import MemoryStore
from devcrew_core.stores.sqlite import SQLiteStore


@dataclass(frozen=True)
class BackendCase:
    """How to open a fresh, empty store of one backend for one test."""

    name: str
    #: (pytest request, a fresh tmp dir) -> (store, URL another process can open)
    open: Callable[[pytest.FixtureRequest, Path], tuple[Store, str]]
    #: Whether separate processes given the URL share the same state.
    shared_across_processes: bool


def _memory(request: pytest.FixtureRequest, tmp: Path) -> tuple[Store, str]:
    url = f"memory://{uuid.uuid4().hex}"
    return MemoryStore(url), url


def _sqlite(request: pytest.FixtureRequest, tmp: Path) -> tuple[Store, str]:
    url = f"sqlite:///{tmp / 'state' / 'devcrew.db'}"
    return SQLiteStore(url), url


def _postgres(request: pytest.FixtureRequest, tmp: Path) -> tuple[Store, str]:
    from devcrew_postgres.store import PostgresStore  # psycopg2 only when selected

    url = request.getfixturevalue("postgres_server").fresh_url()  # a fresh schema
    return PostgresStore(url), url


def _redis(request: pytest.FixtureRequest, tmp: Path) -> tuple[Store, str]:
    from devcrew_redis.store import open_redis_store  # redis-py only when selected

    # One server per session (see redis_server.py); a fresh key prefix per test.
    url = f"{request.getfixturevalue('redis_server_url')}?prefix=test-{uuid.uuid4().hex}"
    return open_redis_store(url), url


BACKENDS: list[BackendCase] = [
    BackendCase("memory", _memory, shared_across_processes=False),
    BackendCase("sqlite", _sqlite, shared_across_processes=True),
    BackendCase("postgres", _postgres, shared_across_processes=True),
    BackendCase("redis", _redis, shared_across_processes=True),
]
