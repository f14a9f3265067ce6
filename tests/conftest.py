"""Shared fixtures. Store fixtures are parametrised over ``store_backends.BACKENDS``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcrew_core.stores.base import Store

from postgres_server import postgres_server  # noqa: F401 - registers the fixture
from redis_server import redis_server_url  # noqa: F401 - registers the fixture
from store_backends import BACKENDS, BackendCase

_BY_NAME = {case.name: case for case in BACKENDS}


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let a test read or write the developer's real ~/.devcrew or env settings."""
    home = tmp_path_factory.mktemp("devcrew-home")
    monkeypatch.setenv("DEVCREW_HOME", str(home))
    for var in ("DEVCREW_CONFIG", "DEVCREW_STATE_URL", "DEVCREW_AUDIT_URL", "REDIS_URL",
                "POSTGRES_HOST", "DEVCREW_LOAD_PLUGINS", "DEVCREW_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(params=sorted(_BY_NAME))
def backend_case(request: pytest.FixtureRequest) -> BackendCase:
    """Each store backend in turn."""
    return _BY_NAME[request.param]


@pytest.fixture
def store_and_url(
    request: pytest.FixtureRequest, backend_case: BackendCase, tmp_path: Path
) -> Iterator[tuple[Store, str]]:
    """A fresh store of each backend and the URL that opens it."""
    store, url = backend_case.open(request, tmp_path)
    try:
        yield store, url
    finally:
        store.close()


@pytest.fixture
def store(store_and_url: tuple[Store, str]) -> Store:
    """A fresh store of each backend."""
    return store_and_url[0]


@pytest.fixture(params=sorted(c.name for c in BACKENDS if c.shared_across_processes))
def shared_store_and_url(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Store, str]]:
    """A fresh store of each backend whose state several processes can share."""
    store, url = _BY_NAME[request.param].open(request, tmp_path)
    try:
        yield store, url
    finally:
        store.close()


@pytest.fixture
def devcrew(tmp_path: Path) -> Any:
    """Run ``devcrew`` as a separate process with its own DEVCREW_HOME; ``ok=True``
    asserts exit code 0."""
    env = {**os.environ, "DEVCREW_HOME": str(tmp_path / "home")}

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "devcrew_core", *args],
                              capture_output=True, text=True, timeout=120, env=env,
                              check=False)
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    return run
