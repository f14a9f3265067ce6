"""The connection each thread keeps for the Redis store's hot scripts, on a real server."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from redis import exceptions as rex

from devcrew_core.stores.records import AgentRecord, Allocation
from devcrew_redis.pinned import PinnedConnections
from devcrew_redis.store import RedisStore

pytestmark = pytest.mark.redis

# Keeps the server busy for 0.5 s, then answers 'late'.
_SLOW_SCRIPT = """
local start = redis.call('TIME')
local t0 = start[1] * 1000000 + start[2]
while true do
  local now = redis.call('TIME')
  if now[1] * 1000000 + now[2] - t0 > 500000 then break end
end
return 'late'
"""


@pytest.fixture
def client(redis_server_url: str) -> Iterator[redis.Redis]:
    pool = redis.BlockingConnectionPool.from_url(
        redis_server_url, max_connections=4, timeout=5, decode_responses=True)
    made = redis.Redis(connection_pool=pool)
    yield made
    made.close()
    pool.disconnect()


def _in_thread(pinned: PinnedConnections, *command: str) -> object:
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(pinned.execute(*command)))
    thread.start()
    thread.join()
    return out[0]


def test_a_thread_sends_every_command_on_the_connection_it_keeps(
        client: redis.Redis) -> None:
    pinned = PinnedConnections(client.connection_pool)
    first = pinned.execute("CLIENT", "ID")
    assert [pinned.execute("CLIENT", "ID") for _ in range(5)] == [first] * 5
    assert pinned.kept == 1
    # Another thread keeps a connection of its own.
    assert _in_thread(pinned, "CLIENT", "ID") != first


def test_a_finished_thread_gives_its_connection_back(client: redis.Redis) -> None:
    pinned = PinnedConnections(client.connection_pool)
    kept_id = _in_thread(pinned, "CLIENT", "ID")
    gc.collect()
    assert pinned.kept == 0
    # The pool hands the same connection out again: it was returned, not leaked.
    assert client.client_id() == kept_id


def test_at_most_half_the_pool_is_kept_and_other_threads_still_get_through(
        client: redis.Redis) -> None:
    pinned = PinnedConnections(client.connection_pool)
    barrier = threading.Barrier(6)
    hold = threading.Event()
    replies: list[object] = []
    peak: list[int] = []

    def work() -> None:
        barrier.wait()
        replies.append(pinned.execute("PING"))
        peak.append(pinned.kept)
        hold.wait(5)  # keep the thread (and what it keeps) alive until all have run
        replies.append(pinned.execute("PING"))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(peak) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    hold.set()
    for thread in threads:
        thread.join()
    assert replies == ["PONG"] * 12
    assert max(peak) == 2
    # Plain client commands still find a free connection while two are kept.
    assert client.ping()


def test_a_reply_that_timed_out_is_never_read_by_the_next_command(
        redis_server_url: str) -> None:
    slow_client = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
        redis_server_url, max_connections=2, socket_timeout=0.2, decode_responses=True))
    pinned = PinnedConnections(slow_client.connection_pool)
    try:
        with pytest.raises(rex.TimeoutError):
            pinned.execute("EVAL", _SLOW_SCRIPT, 0)
        # Without the disconnect this would read the slow script's 'late'.
        reply = None
        for _ in range(20):  # the server is busy for up to 0.5 s more
            try:
                reply = pinned.execute("PING")
                break
            except rex.TimeoutError:
                continue
        assert reply == "PONG"
        # Script errors leave the connection usable.
        with pytest.raises(rex.ResponseError):
            pinned.execute("EVAL", "return redis.call('NOSUCHCOMMAND')", 0)
        assert pinned.execute("ECHO", "still in step") == "still in step"
    finally:
        slow_client.connection_pool.disconnect()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_uses_the_parents_connection(client: redis.Redis) -> None:
    pinned = PinnedConnections(client.connection_pool)
    parent_id = pinned.execute("CLIENT", "ID")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its connection's ID, then leave at once
        try:
            os.write(write_end, str(pinned.execute("CLIENT", "ID")).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    child_id = int(os.read(read_end, 64).decode() or -1)
    os.close(read_end)
    os.waitpid(pid, 0)
    assert child_id not in (-1, parent_id)
    # The parent's connection was not disturbed by the child.
    assert pinned.execute("CLIENT", "ID") == parent_id
    assert pinned.execute("ECHO", "ok") == "ok"


def test_a_pool_of_one_is_never_kept(redis_server_url: str) -> None:
    """With one connection, keeping it would starve every other command of the thread
    (they would wait for the pool's timeout): nothing is kept."""
    # A short pool wait: a regression fails in 2 s instead of hanging for 30.
    store = RedisStore(f"{redis_server_url}?prefix=pool-of-one&timeout=2", pool_size=1)
    try:
        store.put_agent(AgentRecord(agent_id="a1", agent_type="Worker",
                                    capabilities=["work"], max_concurrent_tasks=2))
        assert store.allocate(Allocation(agent_id="a1", task_id="t1", cpu_cores=0.5,
                                         memory_mb=1.0), 1.0) is not None
        agent = store.get_agent("a1")  # a plain command, same thread, right after
        assert agent is not None and agent.running_tasks == ["t1"]
        assert store._pinned.kept == 0
    finally:
        store.close()


def test_an_idle_connection_the_server_closed_is_replaced(
        client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("devcrew_redis.pinned.IDLE_CHECK_SECONDS", 0.05)
    pinned = PinnedConnections(client.connection_pool)
    first = pinned.execute("CLIENT", "ID")
    client.client_kill_filter(_id=first)  # as a server restart or idle timeout would
    time.sleep(0.1)
    # The next call does not fail: the idle connection is checked and reconnected.
    second = pinned.execute("CLIENT", "ID")
    assert second != first
    assert pinned.execute("PING") == "PONG"


def test_close_gives_every_kept_connection_back(client: redis.Redis) -> None:
    pinned = PinnedConnections(client.connection_pool)
    kept_id = pinned.execute("CLIENT", "ID")
    pinned.close()
    assert pinned.kept == 0
    # Returned to the pool, not leaked: the pool hands the same connection out again.
    assert client.client_id() == kept_id
    assert pinned.execute("CLIENT", "ID") == kept_id
    assert pinned.kept == 1


def test_a_dropped_owner_does_not_hold_its_connections(client: redis.Redis) -> None:
    pinned = PinnedConnections(client.connection_pool)
    kept_id = pinned.execute("CLIENT", "ID")
    del pinned
    gc.collect()
    assert client.client_id() == kept_id  # back in the pool


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_with_nothing_kept(client: redis.Redis) -> None:
    """The parent's threads keep all they may (2 of 4); the child forgets that count
    (and the lock) and keeps a connection of its own."""
    pinned = PinnedConnections(client.connection_pool)
    hold = threading.Event()
    started = threading.Barrier(3)

    def keep() -> None:
        pinned.execute("PING")
        started.wait(5)
        hold.wait(5)

    threads = [threading.Thread(target=keep) for _ in range(2)]
    for thread in threads:
        thread.start()
    started.wait(5)
    assert pinned.kept == 2
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            pinned.execute("PING")
            os.write(write_end, str(pinned.kept).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    child_kept = os.read(read_end, 16).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    hold.set()
    for thread in threads:
        thread.join()
    assert child_kept == "1"
