"""The third-party plugin in ``examples/devcrew-example-plugin``, installed with pip and
found by devcrew through its entry point, exactly as a user's plugin would be."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "devcrew-example-plugin"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory the example plugin is pip-installed into (once per module)."""
    work = tmp_path_factory.mktemp("example_plugin")
    # pip builds in the source tree; build a copy so the repository stays clean.
    source = work / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = work / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-input", "--disable-pip-version-check", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / "devcrew_example_plugin" / "__init__.py").is_file()
    return target


def env_for(site: Path, **extra: str) -> dict[str, str]:
    """The environment for a subprocess that sees the installed example plugin.

    A private ``XDG_CACHE_HOME`` keeps stevedore's entry-point cache from an earlier
    run from hiding (or inventing) plugins.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVCREW_")}
    env.update({
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")])),
        "XDG_CACHE_HOME": str(site.parent / "cache"),
        "DEVCREW_HOME": str(site.parent / "home"),
        **extra,
    })
    return env


def run(site: Path, args: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` with the example plugin installed."""
    return subprocess.run([sys.executable, *args], env=env_for(site, **extra),
                          capture_output=True, text=True, timeout=60, check=False)


def plugin_rows(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, object]]:
    """The rows of ``devcrew plugins`` output, by plugin name."""
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_devcrew_plugins_lists_the_example(site: Path) -> None:
    result = run(site, ["-m", "devcrew_core", "plugins"])
    assert result.stderr == ""
    row = plugin_rows(result)["devcrew_example_plugin"]
    assert row == {
        "name": "devcrew_example_plugin",
        "version": "0.1.0",
        "hooks": ["devcrew_notifiers", "devcrew_scorers"],
        "builtin": False,
        "target": "devcrew_example_plugin",
        "error": None,
    }


def test_the_controls_apply_to_the_example(site: Path) -> None:
    only = plugin_rows(run(site, ["-m", "devcrew_core", "plugins"],
                           DEVCREW_LOAD_PLUGINS="devcrew_example_plugin"))
    assert set(only) == {"devcrew_example_plugin"}
    disabled = plugin_rows(run(site, ["-m", "devcrew_core", "plugins"],
                               DEVCREW_DISABLE_PLUGINS="devcrew_example_plugin"))
    assert "devcrew_example_plugin" not in disabled and "devcrew_redis" in disabled


USE_THE_HOOKS = textwrap.dedent("""
    import json, os
    import devcrew_example_plugin
    from devcrew_core import ConfigError, TaskRequest
    from devcrew_core.plugin_types import Notification
    from devcrew_core.plugins import PluginManager
    from devcrew_core.stores.records import AgentRecord

    plugins = PluginManager.discover()
    assert plugins.load_failures == [], plugins.load_failures
    score = plugins.scorer("prefer-idle").score
    request = TaskRequest(task_id="t1", task_type="review", required_capabilities=["review"])
    busy = AgentRecord(agent_id="busy", agent_type="reviewer", capabilities=["review"],
                       max_concurrent_tasks=4, current_load=3)
    idle = AgentRecord(agent_id="idle", agent_type="reviewer", capabilities=["review"],
                       max_concurrent_tasks=2, current_load=0)
    full = AgentRecord(agent_id="full", agent_type="reviewer", capabilities=["review"],
                       max_concurrent_tasks=1, current_load=1)
    agents = [busy, full, idle]
    ranked = sorted(agents, key=lambda a: score(request, a), reverse=True)

    notifier = plugins.notifier("jsonl-file")
    for n in range(2):
        notifier.notify(Notification(
            event="workflow_completed", recipients=("team@example.com",),
            subject=f"release-{n} finished", payload={"run": n}, workflow_id=f"release-{n}"))
    del os.environ["DEVCREW_EXAMPLE_NOTIFY_FILE"]
    try:
        notifier.notify(Notification(event="x", recipients=(), subject="y"))
        unset_error = None
    except ConfigError as exc:
        unset_error = str(exc)

    print(json.dumps({
        "module": devcrew_example_plugin.__file__,
        "ranked": [a.agent_id for a in ranked],
        "scores": {a.agent_id: score(request, a) for a in agents},
        "unset_error": unset_error,
    }))
""")


def test_discovered_scorer_and_notifier_work(site: Path, tmp_path: Path) -> None:
    notify_file = tmp_path / "notifications.jsonl"
    result = run(site, ["-c", USE_THE_HOOKS], DEVCREW_EXAMPLE_NOTIFY_FILE=str(notify_file))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # the installed copy was used, not the source tree
    assert Path(report["module"]).resolve().is_relative_to(site.resolve())
    assert report["ranked"] == ["idle", "busy", "full"]
    assert report["scores"] == {"busy": 0.25, "full": 0.0, "idle": 1.0}
    lines = notify_file.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"event": "workflow_completed", "recipients": ["team@example.com"],
         "subject": f"release-{n} finished", "payload": {"run": n},
         "workflow_id": f"release-{n}"}
        for n in range(2)
    ]
    assert "DEVCREW_EXAMPLE_NOTIFY_FILE" in report["unset_error"]
