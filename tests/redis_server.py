"""A real ``redis-server`` for the tests: started on a free loopback port, stopped at the end.

``redis_server_url`` is session-scoped; under pytest-xdist each worker starts its own
server. Tests isolate their data with a unique ``?prefix=`` per store, so one server
serves the whole session. :func:`running_redis` starts extra servers (one that
requires a password, one that speaks TLS) for tests that need their own.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.servers import TlsFiles, free_port, redis_server_path
from benchmarks.servers import running_redis as start_redis

__all__ = ["TlsFiles", "free_port", "make_tls_files", "redis_server_url", "running_redis"]


def make_tls_files(directory: Path) -> TlsFiles:
    """Make a self-signed certificate for 127.0.0.1 with the ``openssl`` command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        # Not a skip: the TLS test is part of the suite; .ci/run installs openssl.
        pytest.fail("the openssl command is needed to make a TLS certificate "
                    "(apt-get install openssl)")
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(cert=directory / "cert.pem", key=directory / "key.pem")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(files.key), "-out", str(files.cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return files


@contextlib.contextmanager
def running_redis(directory: Path, *extra: str, password: str | None = None,
                  tls: TlsFiles | None = None) -> Iterator[str]:
    """:func:`benchmarks.servers.running_redis`, failing the test (never skipping it)
    when ``redis-server`` is not installed."""
    if redis_server_path() is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server): the "
                    "Redis tests need the real server")
    with start_redis(directory, *extra, password=password, tls=tls) as url:
        yield url


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a redis-server running for this test session (or xdist worker)."""
    with running_redis(tmp_path_factory.mktemp("redis-server")) as url:
        yield url
