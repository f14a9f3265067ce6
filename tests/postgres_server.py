"""A real, throwaway PostgreSQL server for the tests (no mocks).

``postgres_server`` (session scope) runs ``initdb`` in a fresh directory, starts
``postgres`` on a free loopback port with ``fsync=off``, creates a role with a password
and a database, and stops the server at the end (a finalizer and an ``atexit`` hook,
so a crashed session does not leave it running). PostgreSQL refuses to run as root, so
as root every server command runs through ``runuser -u postgres``. Under pytest-xdist
each worker starts its own server.

Each store test gets its own schema (:meth:`PostgresServer.fresh_url`): creating one
costs a few milliseconds, and the URL's ``options=-csearch_path=...`` confines the
store's tables to it, so no test sees another's rows.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from benchmarks.servers import postgres_bin_dir, stop_postgres

ROLE = "devcrew"
DATABASE = "devcrew"
START_TIMEOUT_S = 30.0


def _bin_dir() -> Path:
    """Where the server binaries are (see ``benchmarks.servers.postgres_bin_dir``)."""
    found = postgres_bin_dir()
    if found is None:
        pytest.fail("PostgreSQL server binaries not found: install them (Debian: apt-get "
                    "install postgresql) or set DEVCREW_PG_BIN to the directory of initdb")
    return found


def _as_server_user() -> list[str]:
    """The command prefix that runs a server binary as a user PostgreSQL accepts."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    """A running server: its address, the test role's password, and helpers."""

    host: str
    port: int
    password: str
    socket_dir: Path
    _admin: Any = field(default=None, repr=False)

    def url(self, database: str = DATABASE, password: str | None = None,
            schema: str | None = None) -> str:
        """``postgresql://devcrew:<password>@127.0.0.1:<port>/<database>``, optionally
        confined to ``schema``."""
        secret = quote(self.password if password is None else password, safe="")
        url = f"postgresql://{ROLE}:{secret}@{self.host}:{self.port}/{database}"
        if schema is not None:
            url += f"?options=-csearch_path%3D{schema}"
        return url

    def admin(self) -> Any:
        """An autocommit superuser connection over the Unix socket (trust auth)."""
        import psycopg2

        if self._admin is None or self._admin.closed:
            self._admin = psycopg2.connect(host=str(self.socket_dir), port=self.port,
                                           user="postgres", dbname=DATABASE)
            self._admin.autocommit = True
        return self._admin

    def execute(self, sql: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement as the superuser; the rows it returned, if any."""
        with self.admin().cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def fresh_schema(self) -> str:
        """A new, empty schema owned by the test role."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.execute(f"CREATE SCHEMA {name} AUTHORIZATION {ROLE}")
        return name

    def fresh_url(self) -> str:
        """The URL of a new, empty schema: one test's private store."""
        return self.url(schema=self.fresh_schema())


class _Cluster:
    """initdb + postgres in a temporary directory owned by the server user."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="devcrew-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.log = self.root / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")

    def _run(self, *argv: str) -> None:
        done = subprocess.run([*_as_server_user(), *argv], capture_output=True, check=False)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{output}")

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                  "--no-instructions")
        # Loopback TCP needs the password (so the tests can check wrong passwords);
        # the Unix socket, used only by the fixture itself, is trusted.
        hba = self.data / "pg_hba.conf"
        hba.write_text("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
        if os.geteuid() == 0:
            shutil.chown(hba, "postgres", "postgres")

    def start(self) -> int:
        for _ in range(5):
            port = _free_port()
            log = open(self.log, "ab")  # noqa: SIM115 - the server writes it until stopped
            self.proc = subprocess.Popen(
                [*_as_server_user(), str(self.bin / "postgres"), "-D", str(self.data),
                 "-p", str(port), "-k", str(self.sock), "-c", "listen_addresses=127.0.0.1",
                 "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=200"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            log.close()
            if self._wait_ready(port):
                return port
            self.stop()
        raise RuntimeError(f"PostgreSQL did not start:\n{self.log.read_text(errors='replace')}")

    def _wait_ready(self, port: int) -> bool:
        import psycopg2

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False  # e.g. the port was taken meanwhile: try another
            try:
                psycopg2.connect(host=str(self.sock), port=port, user="postgres",
                                 dbname="postgres", connect_timeout=2).close()
                return True
            except psycopg2.OperationalError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster: clients are disconnected), then make
        sure nothing is left. Safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_postgres(proc, self.data)

    def remove(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this test session (or xdist worker), with a role
    ``devcrew`` (password auth over TCP) owning a database ``devcrew``."""
    import psycopg2  # here, not at the top: conftest imports this module for every test

    cluster = _Cluster()
    atexit.register(cluster.remove)
    try:
        cluster.init()
        port = cluster.start()
        server = PostgresServer("127.0.0.1", port, secrets.token_urlsafe(12), cluster.sock)
        bootstrap = psycopg2.connect(host=str(cluster.sock), port=port, user="postgres",
                                     dbname="postgres")
        try:
            bootstrap.autocommit = True
            with bootstrap.cursor() as cur:
                cur.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD %s", (server.password,))
                cur.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
        finally:
            bootstrap.close()
        yield server
        if server._admin is not None:
            server._admin.close()
    finally:
        cluster.remove()
        atexit.unregister(cluster.remove)
