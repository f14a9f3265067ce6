"""A real ``redis-server`` for the tests: started on a free loopback port, stopped at the end.

``redis_server_url`` is session-scoped; under pytest-xdist each worker starts its own
server. Tests isolate their data with a unique ``?prefix=`` per store, so one server
serves the whole session. :func:`running_redis` starts extra servers (one that
requires a password, one that speaks TLS) for tests that need their own.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class TlsFiles:
    """A self-signed certificate (for 127.0.0.1) and its key."""

    cert: Path
    key: Path


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


def _wait_until_ready(proc: subprocess.Popen[bytes], client: redis.Redis, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode}: "
                                   f"{log.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT} s: "
                                   f"{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.02)
    finally:
        client.close()


@contextlib.contextmanager
def running_redis(directory: Path, *extra: str, password: str | None = None,
                  tls: TlsFiles | None = None) -> Iterator[str]:
    """Run ``redis-server`` in ``directory`` (no persistence) and yield its URL (without
    the password; ``rediss://`` with ``tls``, which then is the only listener).
    ``extra`` are more server arguments."""
    if not Path(REDIS_SERVER).exists():
        pytest.fail("redis-server is not installed (apt-get install redis-server): the "
                    "Redis tests need the real server")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [REDIS_SERVER, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--dir", str(directory)]
    if tls is None:
        args += ["--port", str(port)]
        client = redis.Redis(host="127.0.0.1", port=port, password=password,
                             socket_connect_timeout=0.5)
        url = f"redis://127.0.0.1:{port}/0"
    else:
        args += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls.cert),
                 "--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.cert),
                 "--tls-auth-clients", "no"]
        client = redis.Redis(host="127.0.0.1", port=port, password=password, ssl=True,
                             ssl_ca_certs=str(tls.cert), socket_connect_timeout=0.5)
        url = f"rediss://127.0.0.1:{port}/0"
    if password is not None:
        args += ["--requirepass", password]
    args += extra
    log = directory / f"redis-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, cwd=directory, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until_ready(proc, client, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a redis-server running for this test session (or xdist worker)."""
    with running_redis(tmp_path_factory.mktemp("redis-server")) as url:
        yield url
