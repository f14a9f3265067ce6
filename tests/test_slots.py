"""The slot batcher: claims and releases in batches, and slot hand-over between tasks."""

from __future__ import annotations

import asyncio
from typing import Any

from devcrew_core.default_plugins.scoring import default_score
from devcrew_core.engine.matching import AgentMatcher
from devcrew_core.engine.slots import SlotBatcher
from devcrew_core.models import TaskRequest
from devcrew_core.plugin_types import Scorer
from devcrew_core.stores.memory import MemoryStore
from devcrew_core.stores.records import AgentRecord


class CountingStore(MemoryStore):
    """A real memory store that counts the slot calls made to it."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.calls: list[tuple[str, Any]] = []

    def acquire_slots(self, agent_id: str, task_ids: Any) -> Any:
        self.calls.append(("acquire", list(task_ids)))
        return super().acquire_slots(agent_id, task_ids)

    def release_slots(self, slots: Any) -> Any:
        self.calls.append(("release", list(slots)))
        return super().release_slots(slots)

    def transfer_slots(self, moves: Any) -> Any:
        self.calls.append(("transfer", list(moves)))
        return super().transfer_slots(moves)


def request(task_id: str) -> TaskRequest:
    return TaskRequest(task_id=task_id, task_type="Worker", required_capabilities=["work"],
                       required_agent_type="Worker")


def setup(max_tasks: int = 1) -> tuple[CountingStore, SlotBatcher, list[AgentRecord]]:
    store = CountingStore("memory://slots-test")
    store.put_agent(AgentRecord(agent_id="a1", agent_type="Worker", capabilities=["work"],
                                max_concurrent_tasks=max_tasks))
    matcher = AgentMatcher(store, Scorer(name="default", score=default_score))
    batcher = SlotBatcher(matcher, on_released=lambda: None)
    return store, batcher, matcher.eligible(request("x"))


def holders(store: MemoryStore) -> list[str]:
    agent = store.get_agent("a1")
    assert agent is not None
    return sorted(agent.running_tasks)


def test_a_queued_release_is_handed_to_the_next_claim_without_a_store_call() -> None:
    async def main() -> None:
        store, batcher, agents = setup()
        [first] = batcher.claim_now([(request("t1"), agents)])
        assert first is not None and holders(store) == ["t1"]
        for previous, current in (("t1", "t2"), ("t2", "t3")):
            store.calls.clear()
            batcher.release("a1", previous)
            [claim] = batcher.claim_now([(request(current), agents)])
            assert claim is not None and claim.agent.agent_id == "a1"
            assert store.calls == []  # handed over: nothing to check or commit
        assert holders(store) == ["t1"]  # the store has not been told yet
        batcher.flush()
        # Two hand-overs collapsed into one move.
        assert store.calls == [("transfer", [("a1", "t1", "t3")])]
        assert holders(store) == ["t3"]
        batcher.release("a1", "t3")
        batcher.drain()
        assert holders(store) == []
        store.close()

    asyncio.run(main())


def test_a_release_of_a_handed_over_slot_frees_it_under_its_stored_name() -> None:
    async def main() -> None:
        store, batcher, agents = setup()
        batcher.claim_now([(request("t1"), agents)])
        batcher.release("a1", "t1")
        batcher.claim_now([(request("t2"), agents)])
        store.calls.clear()
        batcher.release("a1", "t2")  # before the hand-over reached the store
        batcher.drain()
        assert store.calls == [("release", [("a1", "t1")])]
        agent = store.get_agent("a1")
        assert agent is not None and agent.current_load == 0
        store.close()

    asyncio.run(main())


def test_without_a_queued_release_a_full_agent_refuses() -> None:
    async def main() -> None:
        store, batcher, agents = setup(max_tasks=1)
        batcher.claim_now([(request("t1"), agents)])
        assert batcher.claim_now([(request("t2"), agents)]) == [None]
        # Two claims for one freed slot: one is handed the slot, the other refused.
        batcher.release("a1", "t1")
        results = batcher.claim_now([(request("t2"), agents), (request("t3"), agents)])
        assert [r is not None for r in results] == [True, False]
        batcher.flush()
        assert holders(store) == ["t2"]
        store.close()

    asyncio.run(main())
