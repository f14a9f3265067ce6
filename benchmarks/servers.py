"""Servers the benchmarks start for themselves: a throwaway ``redis-server`` and a
throwaway PostgreSQL cluster.

The tests use these too (``tests/redis_server.py`` and ``tests/postgres_server.py`` add
their fixtures); this module must not import pytest or a client library, since the
benchmarks run without the test dependencies. The servers start on a free loopback port with no
durability (Redis: no RDB, no AOF; PostgreSQL: ``fsync``, ``synchronous_commit`` and
``full_page_writes`` off, as the tests run it), wait until it answers, stop it at the
end. Readiness is a plain-socket ``PING`` for Redis and ``pg_isready`` for PostgreSQL,
so importing this module needs no client library.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: How long a starting server may take to answer PING.
START_TIMEOUT = 10.0


def redis_server_path() -> str | None:
    """The ``redis-server`` executable, or None when it is not installed."""
    found = shutil.which("redis-server")
    if found is not None:
        return found
    default = Path("/usr/bin/redis-server")
    return str(default) if default.exists() else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class TlsFiles:
    """A certificate for 127.0.0.1 (also its own CA) and its private key."""

    cert: Path
    key: Path


def _answers_ping(port: int, tls: TlsFiles | None) -> bool:
    """True when a server on ``port`` answers PING (PONG, or NOAUTH when it wants a
    password: either way it is up)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as raw:
            sock = raw
            if tls is not None:
                context = ssl.create_default_context(cafile=str(tls.cert))
                sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:  # not listening yet, or reset while starting (ssl.SSLError too)
        return False


def _wait_until_ready(proc: subprocess.Popen[bytes], port: int, log: Path,
                      tls: TlsFiles | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers_ping(port, tls):
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}: "
                               f"{log.read_text(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT} s: "
                               f"{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.02)


@contextlib.contextmanager
def running_redis(directory: Path, *extra: str, executable: str | None = None,
                  password: str | None = None, tls: TlsFiles | None = None
                  ) -> Iterator[str]:
    """Run ``redis-server`` in ``directory`` (no RDB, no AOF) on a free loopback port
    and yield its URL (without the password); the server is stopped when the context
    ends. With ``password`` the server requires it; with ``tls`` it listens only for
    TLS (the URL is then ``rediss://``). ``extra`` are more server arguments. Raises
    :class:`RuntimeError` when it is not installed or does not start."""
    server = executable or redis_server_path()
    if server is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = directory / f"redis-{port}.log"
    args = [server, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--dir", str(directory)]
    if tls is None:
        args += ["--port", str(port)]
        url = f"redis://127.0.0.1:{port}/0"
    else:
        args += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls.cert),
                 "--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.cert),
                 "--tls-auth-clients", "no"]
        url = f"rediss://127.0.0.1:{port}/0"
    if password is not None:
        args += ["--requirepass", password]
    args += extra
    with open(log, "wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, our own executable lookup
            args, cwd=directory, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until_ready(proc, port, log, tls)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- PostgreSQL --------------------------------------------------------------------------
def postgres_bin_dir() -> Path | None:
    """Where ``initdb``, ``pg_ctl`` and ``postgres`` are: ``$DEVCREW_PG_BIN``, the newest
    Debian-style ``/usr/lib/postgresql/N/bin``, or the directory of ``initdb`` on the
    PATH; None when PostgreSQL is not installed."""
    configured = os.environ.get("DEVCREW_PG_BIN")
    if configured:
        return Path(configured)

    def major(initdb: str) -> int:
        name = Path(initdb).parent.parent.name
        return int(name) if name.isdigit() else 0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=major)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return None if initdb is None else Path(initdb).parent


def _as_postgres_user() -> list[str]:
    """The command prefix running a server binary as a user PostgreSQL accepts: it
    refuses to run as root, so as root it runs as ``postgres`` through ``runuser``."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _run_checked(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, check=False)  # noqa: S603 - fixed argv
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{output[-2000:]}")


def _pg_ready(bin_dir: Path, port: int) -> bool:
    """True when the server on ``port`` accepts connections (``pg_isready`` exit 0)."""
    done = subprocess.run(  # noqa: S603 - fixed argv, our own binary
        [str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port),
         "-U", "postgres", "-d", "postgres", "-t", "1"],
        capture_output=True, check=False)
    return done.returncode == 0


def _wait_for_postgres(proc: subprocess.Popen[bytes], bin_dir: Path, port: int) -> bool:
    """Wait until the server answers; False when it exited (e.g. the port was taken)."""
    deadline = time.monotonic() + 3 * START_TIMEOUT
    while not _pg_ready(bin_dir, port):
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextlib.contextmanager
def running_postgres(bin_dir: Path | None = None) -> Iterator[str]:
    """Run a fresh PostgreSQL cluster on a free loopback port and yield the URL of its
    ``postgres`` database (superuser ``postgres``, trust authentication on loopback: a
    throwaway server for one benchmark run). The cluster lives in its own temporary
    directory (the server user must be able to reach it, so not under a root-only
    one) and is stopped and deleted when the context ends. Raises
    :class:`RuntimeError` when PostgreSQL is not installed or does not start."""
    binaries = bin_dir or postgres_bin_dir()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql) "
                           "or set DEVCREW_PG_BIN to the directory of initdb")
    root = Path(tempfile.mkdtemp(prefix="devcrew-bench-pg-"))
    data, sock, log = root / "data", root / "sock", root / "postgres.log"
    sock.mkdir()
    if os.geteuid() == 0:
        for path in (root, sock):
            shutil.chown(path, "postgres", "postgres")
    proc: subprocess.Popen[bytes] | None = None
    try:
        _run_checked([*_as_postgres_user(), str(binaries / "initdb"), "-D", str(data),
                      "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"])
        for _ in range(5):  # the free port may be taken before the server binds it
            port = free_port()
            with open(log, "ab") as out:
                proc = subprocess.Popen(  # noqa: S603 - fixed argv, our own binary
                    [*_as_postgres_user(), str(binaries / "postgres"), "-D", str(data),
                     "-p", str(port), "-k", str(sock), "-c", "listen_addresses=127.0.0.1",
                     "-c", "fsync=off", "-c", "synchronous_commit=off",
                     "-c", "full_page_writes=off", "-c", "max_connections=100"],
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            if _wait_for_postgres(proc, binaries, port):
                break
            stop_postgres(proc, data)
            proc = None
        else:
            raise RuntimeError("PostgreSQL did not start: "
                               f"{log.read_text(errors='replace')[-2000:]}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if proc is not None:
            stop_postgres(proc, data)
        shutil.rmtree(root, ignore_errors=True)


def stop_postgres(proc: subprocess.Popen[bytes], data: Path) -> None:
    """Fast shutdown (SIGINT to the postmaster: clients are disconnected); if it does
    not go within 20 s, kill the process group this module started it in."""
    if proc.poll() is None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            # Only while our server runs: then postmaster.pid names our postmaster.
            pid = int((data / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def unavailable(store: str) -> str | None:
    """Why the benchmarks cannot measure ``store`` here (its server or client library is
    missing), or None when they can; stores that need no server always can."""
    if store == "redis":
        if redis_server_path() is None:
            return "redis-server is not installed (apt-get install redis-server)"
        if importlib.util.find_spec("redis") is None:
            return "redis-py is not installed (pip install 'devcrew[redis]')"
    if store == "postgres":
        if postgres_bin_dir() is None:
            return "PostgreSQL is not installed (apt-get install postgresql)"
        if importlib.util.find_spec("psycopg2") is None:
            return "psycopg2 is not installed (pip install 'devcrew[postgres]')"
    return None
