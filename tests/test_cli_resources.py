"""``devcrew monitor resources`` and the reservation commands, as separate processes."""

from __future__ import annotations

import json
from typing import Any


def test_reserve_list_monitor_cancel(devcrew: Any) -> None:
    devcrew("agent", "register", "--id", "ml-1", "--type", "ML-Engineer", "--capabilities",
            "tensorflow", "--max-tasks", "4", "--cpu-cores", "8", "--memory-mb", "16384")
    made = json.loads(devcrew("agent", "reserve", "--id", "ml-1", "--cpu-cores", "6",
                              "--memory-mb", "8192", "--duration", "3600", "--task-id",
                              "future-1", "-o", "json").stdout)
    assert made["reservation_id"].startswith("rsv-") and made["task_id"] == "future-1"
    listed = json.loads(devcrew("agent", "reservations", "-o", "json").stdout)
    assert [r["reservation_id"] for r in listed] == [made["reservation_id"]]
    [row] = json.loads(devcrew("monitor", "resources", "--output", "json").stdout)
    assert (row["cpu_limit"], row["cpu_reserved"], row["max_tasks"]) == (8, 6, 4)
    table = devcrew("monitor", "resources", "--format", "table").stdout
    assert "ml-1" in table and "cpu_utilization" in table
    full = devcrew("agent", "reserve", "--id", "ml-1", "--cpu-cores", "4", "--memory-mb",
                   "1", "--duration", "10", ok=False)
    assert full.returncode == 1 and "does not have 4 cores" in full.stderr
    devcrew("agent", "cancel-reservation", "--reservation-id", made["reservation_id"])
    gone = devcrew("agent", "cancel-reservation", "--reservation-id", made["reservation_id"],
                   ok=False)
    assert gone.returncode == 1 and "no reservation" in gone.stderr
    both = json.loads(devcrew("monitor", "resources", "--allocations", "-o", "json").stdout)
    assert both["allocations"] == [] and both["agents"][0]["cpu_reserved"] == 0
