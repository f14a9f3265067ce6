"""The plugin manager: registration, the typed facade for every hook, discovery and the
built-in plugins.

Each test builds its own ``PluginManager()`` (never the process-wide one), registers a
plugin written inline and unregisters it in ``finally`` (see :func:`registered`).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import pytest
from click.testing import CliRunner

from devcrew_core import (
    DefinitionError,
    Objective,
    PluginError,
    Settings,
    TaskRequest,
    UsageError,
)
from devcrew_core.cli.main import cli
from devcrew_core.default_plugins import notifiers as builtin_notifiers
from devcrew_core.default_plugins import operators as builtin_operators
from devcrew_core.default_plugins import scoring as builtin_scoring
from devcrew_core.default_plugins import stores as builtin_stores
from devcrew_core.default_plugins import strategies as builtin_strategies
from devcrew_core.hookspecs import hookimpl
from devcrew_core.plugin_types import (
    MISSING,
    AgentRunner,
    CliCommand,
    Decomposer,
    Executor,
    Notification,
    Notifier,
    PreconditionOperator,
    Scorer,
    StoreBackend,
    TemplateEntry,
)
from devcrew_core.plugins import (
    ESSENTIAL_PLUGINS,
    PluginManager,
    reset_plugin_manager,
    resolve_ref,
)
from devcrew_core.stores.records import AgentRecord

BUILTIN_PLUGINS = {
    "devcrew.stores", "devcrew.scoring", "devcrew.operators", "devcrew.strategies",
    "devcrew.notifiers", "devcrew.runners", "devcrew.executors",
}
BUNDLED_PLUGINS = {
    "devcrew_redis", "devcrew_postgres", "devcrew_celery", "devcrew_prefect",
    "devcrew_templates",
}


# -- helpers -------------------------------------------------------------------------------

@pytest.fixture
def pm() -> PluginManager:
    """A fresh, empty plugin manager (no entry points loaded)."""
    return PluginManager()


@contextmanager
def registered(
    manager: PluginManager, plugin: object, name: str, version: str | None = None
) -> Iterator[str]:
    """Register ``plugin``, insist that it loaded, and unregister it afterwards."""
    failures_before = len(manager.load_failures)
    plugin_name = manager.register(plugin, name=name, version=version)
    try:
        assert manager.load_failures[failures_before:] == [], "plugin failed to register"
        yield plugin_name
    finally:
        manager.unregister(plugin_name)


@contextmanager
def captured_logs(caplog: pytest.LogCaptureFixture, name: str, level: int) -> Iterator[None]:
    """Capture logger ``name`` even if the CLI set ``propagate = False`` on "devcrew"."""
    logger = logging.getLogger(name)
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(level, logger=name):
            yield
    finally:
        logger.removeHandler(caplog.handler)


def register_builtin(manager: PluginManager, module: ModuleType) -> str:
    """Register a built-in module the way discovery does (by its module path)."""
    return manager.register(module, name=module.__name__, target=module.__name__)


def agent(agent_id: str, *, load: int = 0, slots: int = 4, weight: int = 10,
          agent_type: str = "worker", capabilities: tuple[str, ...] = ("python",)) -> AgentRecord:
    """An agent record as a store would return it."""
    return AgentRecord(
        agent_id=agent_id, agent_type=agent_type, capabilities=list(capabilities),
        max_concurrent_tasks=slots, current_load=load, priority_weight=weight,
    )


def request(*capabilities: str) -> TaskRequest:
    """A task request needing ``capabilities``."""
    return TaskRequest(task_id="t1", task_type="build", required_capabilities=list(capabilities))


# -- one test per hook, through its facade methods -------------------------------------------

def test_devcrew_scorers_collected_and_selected(pm: PluginManager) -> None:
    class IdleFirst:
        @hookimpl
        def devcrew_scorers(self) -> Iterator[Scorer]:
            yield Scorer(name="idle-first", score=lambda req, a: -float(a.current_load))

    with registered(pm, IdleFirst(), "idle-first-plugin"):
        assert list(pm.scorers()) == ["idle-first"]
        score = pm.scorer("idle-first").score
        assert score(request("python"), agent("a", load=0)) > score(
            request("python"), agent("b", load=2))
        with pytest.raises(PluginError, match=r"unknown scorer 'nope' \(available: idle-first\)"):
            pm.scorer("nope")
    assert pm.scorers() == {}


def test_devcrew_decomposition_strategies_collected_and_selected(pm: PluginManager) -> None:
    class Single:
        @hookimpl
        def devcrew_decomposition_strategies(self) -> list[Decomposer]:
            from devcrew_core import Task

            def one_task(objective: Objective, spokes: Any) -> list[Task]:
                return [Task(task_id=f"{objective.objective_id}-all",
                             agent_type=spokes[0].agent_type)]

            return [Decomposer(name="single", decompose=one_task)]

    with registered(pm, Single(), "single-plugin"):
        assert list(pm.decomposers()) == ["single"]
        objective = Objective(objective_id="obj", description="do it")
        tasks = pm.decomposer("single").decompose(objective, [agent("a", agent_type="dev")])
        assert [(t.task_id, t.agent_type) for t in tasks] == [("obj-all", "dev")]
        with pytest.raises(PluginError, match=r"available: single\)"):
            pm.decomposer("functional")


def test_devcrew_precondition_operators_collected_and_selected(pm: PluginManager) -> None:
    class StartsWith:
        @hookimpl
        def devcrew_precondition_operators(self) -> Iterator[PreconditionOperator]:
            yield PreconditionOperator(
                name="startswith",
                compare=lambda actual, expected: str(actual).startswith(expected),
            )

    with registered(pm, StartsWith(), "startswith-plugin"):
        compare = pm.precondition_operator("startswith").compare
        assert compare("release-1.2", "release") is True
        assert compare("hotfix", "release") is False
        with pytest.raises(PluginError, match=r"unknown precondition operator '~='"):
            pm.precondition_operator("~=")


def test_devcrew_notifiers_collected_and_selected(pm: PluginManager) -> None:
    delivered: list[Notification] = []

    class Collect:
        @hookimpl
        def devcrew_notifiers(self) -> Iterator[Notifier]:
            yield Notifier(name="collect", notify=delivered.append,
                           accepts=lambda recipient: recipient.endswith("@example.com"))

    with registered(pm, Collect(), "collect-plugin"):
        notifier = pm.notifier("collect")
        note = Notification(event="workflow_completed", recipients=("a@example.com",),
                            subject="done", workflow_id="wf-1")
        notifier.notify(note)
        assert delivered == [note]
        assert notifier.accepts is not None
        assert notifier.accepts("a@example.com") and not notifier.accepts("#ops")
        with pytest.raises(PluginError, match=r"unknown notifier 'slack' \(available: collect\)"):
            pm.notifier("slack")


def test_devcrew_store_backends_selected_by_url_scheme(pm: PluginManager) -> None:
    class Backends:
        @hookimpl
        def devcrew_store_backends(self) -> Iterator[StoreBackend]:
            yield StoreBackend(name="kv", schemes=("KV", "kvs"), factory="json:loads")

    with registered(pm, Backends(), "kv-plugin"):
        assert list(pm.store_backends()) == ["kv"]
        assert pm.store_backend_for("kv://host/0").name == "kv"
        assert pm.store_backend_for("KVS://host/0").name == "kv"
        with pytest.raises(PluginError) as info:
            pm.store_backend_for("nosuch://admin:s3cret@db.example/state")
        message = str(info.value)
        assert "'nosuch'" in message and "known: kv, kvs" in message
        assert "s3cret" not in message  # a URL may carry a password: only the scheme is shown


def test_two_store_backends_claiming_one_scheme_is_an_error(pm: PluginManager) -> None:
    class First:
        @hookimpl
        def devcrew_store_backends(self) -> Iterator[StoreBackend]:
            yield StoreBackend(name="kv-a", schemes=("kv",), factory="json:loads")

    class Second:
        @hookimpl
        def devcrew_store_backends(self) -> Iterator[StoreBackend]:
            yield StoreBackend(name="kv-b", schemes=("kv",), factory="json:loads")

    claimed = r"'kv' is claimed by store backends 'kv-a' and 'kv-b'"
    with (registered(pm, First(), "first"), registered(pm, Second(), "second"),
          pytest.raises(PluginError, match=claimed)):
        pm.store_backend_for("kv://x")


def test_builtin_store_backends_resolve_to_their_factories(pm: PluginManager) -> None:
    register_builtin(pm, builtin_stores)
    sqlite = pm.store_backend_for("sqlite:////tmp/devcrew-test.db")
    memory = pm.store_backend_for("memory://")
    assert (sqlite.name, memory.name) == ("sqlite", "memory")
    for backend in (sqlite, memory):
        assert isinstance(backend.factory, str)  # heavy backends are named, imported late
        assert callable(resolve_ref(backend.factory))
    with pytest.raises(PluginError, match=r"'redis'.*matching devcrew plugin installed"):
        pm.store_backend_for("redis://localhost:6379/0")


def test_devcrew_executors_collected_and_selected(pm: PluginManager) -> None:
    class Executors:
        @hookimpl
        def devcrew_executors(self) -> Iterator[Executor]:
            yield Executor(name="inline", factory=lambda settings: ("inline-executor", settings))
            yield Executor(name="remote", factory="json:JSONDecoder")

    with registered(pm, Executors(), "executors-plugin"):
        assert list(pm.executors()) == ["inline", "remote"]
        inline = pm.executor("inline").factory
        settings = Settings()
        assert callable(inline) and inline(settings) == ("inline-executor", settings)
        assert resolve_ref(pm.executor("remote").factory) is json.JSONDecoder
        with pytest.raises(PluginError, match=r"unknown executor 'celery' "
                                              r"\(available: inline, remote\)"):
            pm.executor("celery")


def test_devcrew_agent_runners_collected_and_selected(pm: PluginManager) -> None:
    class Echo:
        @hookimpl
        def devcrew_agent_runners(self) -> Iterator[AgentRunner]:
            yield AgentRunner(name="echo", factory=lambda spec: (lambda call: dict(spec)))

    with registered(pm, Echo(), "echo-plugin"):
        factory = pm.agent_runner("echo").factory
        assert callable(factory)
        runner = factory({"kind": "echo", "greeting": "hi"})
        assert runner(None) == {"kind": "echo", "greeting": "hi"}
        with pytest.raises(PluginError, match=r"unknown agent runner kind 'ssh' "
                                              r"\(available: echo\)"):
            pm.agent_runner("ssh")


def test_devcrew_workflow_templates_collected_and_selected(pm: PluginManager) -> None:
    class Templates:
        @hookimpl
        def devcrew_workflow_templates(self) -> Iterator[TemplateEntry]:
            yield TemplateEntry(name="tdd", template="collections:OrderedDict")
            yield TemplateEntry(name="inline", template=dict)

    with registered(pm, Templates(), "templates-plugin"):
        assert set(pm.workflow_templates()) == {"tdd", "inline"}
        from collections import OrderedDict

        assert resolve_ref(pm.workflow_template("tdd").template) is OrderedDict
        assert resolve_ref(pm.workflow_template("inline").template) is dict
        with pytest.raises(PluginError, match=r"unknown workflow template 'bug-fix' "
                                              r"\(available: inline, tdd\)"):
            pm.workflow_template("bug-fix")


def test_devcrew_cli_commands_reach_the_cli(pm: PluginManager) -> None:
    @click.command()
    @click.argument("who")
    def hello(who: str) -> None:
        """Say hello."""
        click.echo(f"hello {who}")

    class Commands:
        @hookimpl
        def devcrew_cli_commands(self) -> Iterator[CliCommand]:
            yield CliCommand(name="hello", command=hello)
            yield CliCommand(name="plugins", command=hello)  # clashes with a built-in

    with registered(pm, Commands(), "hello-plugin"):
        assert pm.cli_commands()["hello"].command is hello
        reset_plugin_manager(pm)  # the CLI looks plugin commands up on the process manager
        try:
            runner = CliRunner()
            result = runner.invoke(cli, ["hello", "crew"])
            assert result.exit_code == 0, result.output
            assert result.stdout == "hello crew\n"
            assert "hello" in runner.invoke(cli, ["--help"]).stdout
            # a plugin cannot replace a built-in command
            builtin = runner.invoke(cli, ["plugins", "--help"])
            assert "List plugins as JSON" in builtin.stdout
        finally:
            reset_plugin_manager(None)


# -- rules shared by every hook ----------------------------------------------------------------

@dataclass(frozen=True)
class HookCase:
    """One hook, a record factory for it, and its facade methods."""

    hook: str
    make: Callable[[str], Any]
    collect: Callable[[PluginManager], dict[str, Any]]
    pick: Callable[[PluginManager, str], Any] | None


HOOK_CASES = [
    HookCase("devcrew_scorers", lambda n: Scorer(name=n, score=lambda r, a: 0.0),
             PluginManager.scorers, PluginManager.scorer),
    HookCase("devcrew_decomposition_strategies",
             lambda n: Decomposer(name=n, decompose=lambda o, s: []),
             PluginManager.decomposers, PluginManager.decomposer),
    HookCase("devcrew_precondition_operators",
             lambda n: PreconditionOperator(name=n, compare=lambda a, e: True),
             PluginManager.precondition_operators, PluginManager.precondition_operator),
    HookCase("devcrew_notifiers", lambda n: Notifier(name=n, notify=lambda note: None),
             PluginManager.notifiers, PluginManager.notifier),
    HookCase("devcrew_store_backends",
             lambda n: StoreBackend(name=n, schemes=(n,), factory="json:loads"),
             PluginManager.store_backends, lambda m, n: m.store_backend_for(f"{n}://x")),
    HookCase("devcrew_executors", lambda n: Executor(name=n, factory="json:loads"),
             PluginManager.executors, PluginManager.executor),
    HookCase("devcrew_agent_runners", lambda n: AgentRunner(name=n, factory="json:loads"),
             PluginManager.agent_runners, PluginManager.agent_runner),
    HookCase("devcrew_workflow_templates", lambda n: TemplateEntry(name=n, template=dict),
             PluginManager.workflow_templates, PluginManager.workflow_template),
    HookCase("devcrew_cli_commands",
             lambda n: CliCommand(name=n, command=click.Command(n)),
             PluginManager.cli_commands, None),
]


def plugin_for(hook: str, records: Callable[[], Any]) -> object:
    """A plugin object implementing ``hook`` by returning ``records()``."""
    impl = hookimpl(lambda: records())
    return type("InlinePlugin", (), {hook: staticmethod(impl)})()


@pytest.fixture(params=HOOK_CASES, ids=lambda case: case.hook)
def case(request: pytest.FixtureRequest) -> HookCase:
    """Each hook in turn."""
    result: HookCase = request.param
    return result


def test_records_of_all_plugins_are_collected_in_registration_order(
    pm: PluginManager, case: HookCase
) -> None:
    first = [case.make("one"), case.make("two")]
    second = [case.make("three")]
    with registered(pm, plugin_for(case.hook, lambda: first), "p1"), \
            registered(pm, plugin_for(case.hook, lambda: iter(second)), "p2"):
        collected = case.collect(pm)
        assert list(collected) == ["one", "two", "three"]
        assert list(collected.values()) == first + second
        if case.pick is not None:
            assert case.pick(pm, "three") is second[0]
    assert case.collect(pm) == {}  # unregistering drops the records


def test_duplicate_names_name_both_plugins_and_versions(pm: PluginManager, case: HookCase) -> None:
    with (registered(pm, plugin_for(case.hook, lambda: [case.make("same")]), "alpha",
                     version="1.2.0"),
          registered(pm, plugin_for(case.hook, lambda: [case.make("same")]), "beta"),
          pytest.raises(PluginError) as info):
        case.collect(pm)
    message = str(info.value)
    assert "'same' is provided twice" in message
    assert "plugin 'alpha' 1.2.0" in message and "plugin 'beta'" in message
    assert "DEVCREW_DISABLE_PLUGINS" in message


def test_a_record_of_the_wrong_type_is_an_error(pm: PluginManager, case: HookCase) -> None:
    other = Scorer(name="x", score=lambda r, a: 0.0)
    wrong = other if case.hook != "devcrew_scorers" else Notifier(name="x", notify=print)
    expected = rf"plugin 'wrong-type': {case.hook}\(\) returned {type(wrong).__name__}, expected"
    with (registered(pm, plugin_for(case.hook, lambda: [wrong]), "wrong-type"),
          pytest.raises(PluginError, match=expected)):
        case.collect(pm)


def test_a_single_record_instead_of_an_iterable_is_an_error(
    pm: PluginManager, case: HookCase
) -> None:
    with (registered(pm, plugin_for(case.hook, lambda: case.make("lonely")), "single"),
          pytest.raises(PluginError, match=r"returned a single .*; return a list or yield")):
        case.collect(pm)


def test_a_record_without_a_name_is_an_error(pm: PluginManager, case: HookCase) -> None:
    with (registered(pm, plugin_for(case.hook, lambda: [case.make(" ")]), "nameless"),
          pytest.raises(PluginError, match=r"empty name")):
        case.collect(pm)


def test_a_hook_that_raises_is_reported_with_its_plugin(pm: PluginManager, case: HookCase) -> None:
    def explode() -> Any:
        raise RuntimeError("config missing")

    expected = rf"plugin 'exploding': {case.hook}\(\) raised RuntimeError: config missing"
    with (registered(pm, plugin_for(case.hook, explode), "exploding"),
          pytest.raises(PluginError, match=expected)):
        case.collect(pm)


def test_unknown_names_list_what_is_available(pm: PluginManager, case: HookCase) -> None:
    if case.pick is None:
        # CLI commands have no selector: the CLI looks them up by name itself.
        assert not hasattr(PluginManager, "cli_command")
        return
    plugin = plugin_for(case.hook, lambda: [case.make("b"), case.make("a")])
    with (registered(pm, plugin, "p"),
          pytest.raises(PluginError, match=r"\b(available|known): a, b\b")):
        case.pick(pm, "zzz")


# -- registration -----------------------------------------------------------------------------

def test_a_misspelt_hook_is_a_load_failure_and_nothing_of_the_plugin_registers(
    pm: PluginManager,
) -> None:
    class Typo:
        @hookimpl
        def devcrew_scorer(self) -> list[Scorer]:  # the hook is devcrew_scorers
            return [Scorer(name="typo", score=lambda r, a: 1.0)]

        @hookimpl
        def devcrew_notifiers(self) -> list[Notifier]:
            return [Notifier(name="typo-notifier", notify=print)]

    name = pm.register(Typo(), name="typo-plugin")
    try:
        assert [f.name for f in pm.load_failures] == ["typo-plugin"]
        error = pm.load_failures[0].error
        assert "unknown hook 'devcrew_scorer'" in error
        assert "did you mean 'devcrew_scorers'" in error
        assert pm.scorers() == {} and pm.notifiers() == {}
        rows = pm.describe()
        assert rows == [{
            "name": "typo-plugin", "version": None, "hooks": [], "builtin": False,
            "target": "typo-plugin", "error": error,
        }]
    finally:
        pm.unregister(name)  # harmless: it was never registered


def test_a_hookimpl_with_arguments_the_spec_lacks_is_a_load_failure(pm: PluginManager) -> None:
    class ExtraArgument:
        @hookimpl
        def devcrew_scorers(self, settings: Any) -> list[Scorer]:
            return []

    pm.register(ExtraArgument(), name="extra-arg")
    assert [f.name for f in pm.load_failures] == ["extra-arg"]
    assert "settings" in pm.load_failures[0].error
    assert pm.describe()[0]["error"] == pm.load_failures[0].error
    assert pm.scorers() == {}


def test_a_name_already_taken_is_a_failure_and_keeps_the_first_plugin(pm: PluginManager) -> None:
    first = plugin_for("devcrew_scorers", lambda: [Scorer(name="one", score=lambda r, a: 1.0)])
    second = plugin_for("devcrew_scorers", lambda: [Scorer(name="two", score=lambda r, a: 2.0)])
    with registered(pm, first, "same-name"):
        pm.register(second, name="same-name", target="other.module")
        assert [f.name for f in pm.load_failures] == ["same-name"]
        assert "already registered" in pm.load_failures[0].error
        assert list(pm.scorers()) == ["one"]


def test_registering_the_same_plugin_twice_keeps_the_first_registration(
    pm: PluginManager,
) -> None:
    plugin = plugin_for("devcrew_scorers", lambda: [Scorer(name="one", score=lambda r, a: 1.0)])
    with registered(pm, plugin, "original"):
        pm.register(plugin, name="alias")
        assert [f.name for f in pm.load_failures] == ["alias"]
        assert "already registered as 'original'" in pm.load_failures[0].error
        assert list(pm.scorers()) == ["one"]
        assert [row["name"] for row in pm.describe() if row["error"] is None] == ["original"]


def test_describe_lists_registered_plugins_with_their_hooks(pm: PluginManager) -> None:
    class Both:
        @hookimpl
        def devcrew_scorers(self) -> list[Scorer]:
            return []

        @hookimpl
        def devcrew_notifiers(self) -> list[Notifier]:
            return []

    register_builtin(pm, builtin_scoring)
    with registered(pm, Both(), "both", version="2.0"):
        assert pm.describe() == [{
            "name": "both", "version": "2.0", "hooks": ["devcrew_notifiers", "devcrew_scorers"],
            "builtin": False, "target": "both", "error": None,
        }]
        assert [row["name"] for row in pm.describe(include_builtin=True)] == [
            "both", "devcrew_core.default_plugins.scoring"]


def test_wrappers_observe_but_contribute_no_records(pm: PluginManager) -> None:
    calls: list[str] = []  # collecting records never runs a wrapper

    class Plain:
        @hookimpl
        def devcrew_scorers(self) -> list[Scorer]:
            return [Scorer(name="plain", score=lambda r, a: 1.0)]

    class Wrapper:
        @hookimpl(wrapper=True)
        def devcrew_scorers(self) -> Iterator[None]:
            calls.append("wrapped")
            return (yield)

    with registered(pm, Plain(), "plain"), registered(pm, Wrapper(), "wrapper"):
        assert list(pm.scorers()) == ["plain"]
        assert calls == []


# -- resolve_ref ------------------------------------------------------------------------------

def test_resolve_ref_imports_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = "devcrew_lazy_target_mod"
    (tmp_path / f"{module}.py").write_text("class Thing:\n    class Inner:\n        x = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    record = TemplateEntry(name="lazy", template=f"{module}:Thing.Inner")
    assert module not in sys.modules  # naming it imported nothing
    resolved = resolve_ref(record.template)
    assert module in sys.modules
    assert resolved.x == 42
    monkeypatch.delitem(sys.modules, module)
    assert resolve_ref(dict) is dict  # anything but a string is returned as it is


@pytest.mark.parametrize("ref", [
    "no_colon_here", ":attribute", "json:", "devcrew_no_such_module_xyz:thing",
    "json:no_such_attribute", "json.decoder:JSONDecoder.nope",
])
def test_resolve_ref_bad_paths_are_plugin_errors(ref: str) -> None:
    with pytest.raises(PluginError, match="executor 'x'") as info:
        resolve_ref(ref, owner="executor 'x'")
    assert repr(ref) in str(info.value)


def test_resolve_ref_reports_an_import_that_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "devcrew_raising_mod.py").write_text("raise ImportError('needs libfoo')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"ImportError: needs libfoo"):
        resolve_ref("devcrew_raising_mod:anything")


# -- discovery --------------------------------------------------------------------------------

def loaded_names(manager: PluginManager) -> set[str]:
    """Names of the plugins that registered without error."""
    return {row["name"] for row in manager.describe(include_builtin=True) if row["error"] is None}


def test_discover_finds_builtin_and_bundled_plugins() -> None:
    manager = PluginManager.discover(environ={})
    assert manager.load_failures == []
    rows = {row["name"]: row for row in manager.describe(include_builtin=True)}
    assert set(rows) >= BUILTIN_PLUGINS | BUNDLED_PLUGINS
    assert all(rows[name]["builtin"] for name in BUILTIN_PLUGINS)
    assert not any(rows[name]["builtin"] for name in BUNDLED_PLUGINS)
    assert rows["devcrew.scoring"]["hooks"] == ["devcrew_scorers"]
    assert rows["devcrew_redis"]["target"] == "devcrew_redis.plugin"
    assert rows["devcrew.stores"]["version"] == rows["devcrew_redis"]["version"] is not None
    assert {row["name"] for row in manager.describe()} >= BUNDLED_PLUGINS
    assert not BUILTIN_PLUGINS & {row["name"] for row in manager.describe()}
    assert "default" in manager.scorers()
    assert {"functional", "sequential", "parallel"} <= set(manager.decomposers())
    assert "log" in manager.notifiers()
    assert manager.store_backend_for("sqlite:///x.db").name == "sqlite"


def test_disable_plugins_skips_the_named_ones() -> None:
    manager = PluginManager.discover(
        environ={"DEVCREW_DISABLE_PLUGINS": " devcrew_redis , devcrew.notifiers"})
    names = loaded_names(manager)
    assert "devcrew_redis" not in names and "devcrew.notifiers" not in names
    assert "devcrew_postgres" in names and "devcrew.scoring" in names
    assert "log" not in manager.notifiers()


@pytest.mark.parametrize("essential", sorted(ESSENTIAL_PLUGINS))
def test_an_essential_builtin_cannot_be_disabled(essential: str) -> None:
    assert {"devcrew.stores", "devcrew.scoring", "devcrew.operators", "devcrew.executors",
            "devcrew.runners"} == ESSENTIAL_PLUGINS
    with pytest.raises(UsageError, match=rf"{essential} cannot be disabled"):
        PluginManager.discover(environ={"DEVCREW_DISABLE_PLUGINS": f"devcrew_redis,{essential}"})


def test_load_plugins_empty_loads_only_builtins() -> None:
    manager = PluginManager.discover(environ={"DEVCREW_LOAD_PLUGINS": ""})
    assert loaded_names(manager) == BUILTIN_PLUGINS
    assert manager.describe() == []  # without --all nothing is left to show


def test_load_plugins_names_which_non_builtins_load() -> None:
    manager = PluginManager.discover(environ={"DEVCREW_LOAD_PLUGINS": "devcrew_redis"})
    assert loaded_names(manager) == BUILTIN_PLUGINS | {"devcrew_redis"}


def test_an_unknown_name_in_the_controls_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with captured_logs(caplog, "devcrew.plugins", logging.WARNING):
        PluginManager.discover(environ={"DEVCREW_DISABLE_PLUGINS": "devcrew_rediss"})
    assert "DEVCREW_DISABLE_PLUGINS names no installed plugin: devcrew_rediss" in caplog.text


# -- a broken installed plugin ------------------------------------------------------------------

GOOD_PLUGIN = '''
from devcrew_core import hookimpl
from devcrew_core.plugin_types import Notifier, Scorer

@hookimpl
def devcrew_scorers():
    yield Scorer(name="fake-score", score=lambda request, agent: 0.5)

@hookimpl
def devcrew_notifiers():
    yield Notifier(name="fake-notify", notify=lambda notification: None)
'''


@pytest.fixture(scope="module")
def fake_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding an installed distribution with a good and a broken plugin."""
    root = tmp_path_factory.mktemp("fake_site")
    dist_info = root / "fake_pkg-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-pkg\nVersion: 1.0\nSummary: test plugins\n")
    (dist_info / "entry_points.txt").write_text(
        "[devcrew]\nfake_good = fake_good_plugin\nfake_broken = fake_broken_plugin\n")
    (root / "fake_good_plugin.py").write_text(GOOD_PLUGIN)
    (root / "fake_broken_plugin.py").write_text(
        "raise ImportError('fake_broken needs the unobtainium package')\n")
    return root


def run_cli(site: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """``python -m devcrew_core ARGS`` with ``site`` on the path and a private
    stevedore cache (so a cache written by another run cannot hide the fake plugins).

    stevedore keys its cache on the mtimes of every ``sys.path`` entry, so nothing may
    write into one between runs: the cache and the working directory (``sys.path[0]``
    under ``-m``) live beside ``site``, and no bytecode is written into ``site``.
    """
    workdir = site.parent / f"{site.name}-cwd"
    workdir.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVCREW_")}
    env.update({
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")])),
        "PYTHONDONTWRITEBYTECODE": "1",
        "XDG_CACHE_HOME": str(site.parent / f"{site.name}-cache"),
        "DEVCREW_HOME": str(site.parent / f"{site.name}-home"),
        **extra_env,
    })
    return subprocess.run([sys.executable, "-m", "devcrew_core", *args], env=env, cwd=workdir,
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_broken_plugin_is_listed_with_its_error_and_warned_once(fake_install: Path) -> None:
    result = run_cli(fake_install, "plugins", "--all")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["fake_good"]["version"] == "1.0"
    assert rows["fake_good"]["hooks"] == ["devcrew_notifiers", "devcrew_scorers"]
    assert rows["fake_good"]["error"] is None
    assert rows["fake_broken"]["version"] == "1.0"
    assert rows["fake_broken"]["hooks"] == []
    assert rows["fake_broken"]["error"] == (
        "ImportError: fake_broken needs the unobtainium package")
    assert set(rows) >= BUILTIN_PLUGINS  # --all includes the built-ins, still loaded
    warning_lines = result.stderr.strip().splitlines()
    assert len(warning_lines) == 1, result.stderr
    assert "fake_broken" in warning_lines[0] and "unobtainium" in warning_lines[0]
    assert "fake_good" not in result.stderr


def test_the_cli_keeps_working_beside_a_broken_plugin(fake_install: Path) -> None:
    version = run_cli(fake_install, "--version")
    assert version.returncode == 0 and version.stdout.startswith("devcrew "), version.stderr
    listing = run_cli(fake_install, "plugins")
    assert listing.returncode == 0, listing.stderr
    names = {row["name"] for row in json.loads(listing.stdout)}
    assert {"fake_good", "fake_broken"} <= names and not names & BUILTIN_PLUGINS
    helped = run_cli(fake_install, "--help")
    assert helped.returncode == 0 and "plugins" in helped.stdout, helped.stderr


def test_debug_shows_the_broken_plugins_traceback(fake_install: Path) -> None:
    result = run_cli(fake_install, "--debug", "plugins")
    assert result.returncode == 0, result.stderr
    assert "Traceback" in result.stderr and "fake_broken_plugin.py" in result.stderr


def test_disabling_the_broken_plugin_silences_it(fake_install: Path) -> None:
    result = run_cli(fake_install, "plugins", DEVCREW_DISABLE_PLUGINS="fake_broken")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "fake_broken" not in {row["name"] for row in json.loads(result.stdout)}


def test_disabling_an_essential_builtin_is_a_usage_error_in_the_cli(fake_install: Path) -> None:
    result = run_cli(fake_install, "plugins", DEVCREW_DISABLE_PLUGINS="devcrew.scoring")
    assert result.returncode == 2
    assert "devcrew.scoring cannot be disabled" in result.stderr


# -- built-in precondition operators ------------------------------------------------------------

@pytest.fixture
def operators(pm: PluginManager) -> Iterator[PluginManager]:
    """A manager with the built-in operators registered."""
    name = register_builtin(pm, builtin_operators)
    try:
        yield pm
    finally:
        pm.unregister(name)


@pytest.mark.parametrize(("name", "actual", "expected", "result"), [
    ("==", 3, 3, True), ("==", "a", "b", False), ("==", None, None, True),
    ("==", MISSING, None, False),
    ("!=", 3, 4, True), ("!=", 3, 3, False), ("!=", MISSING, 3, False),
    (">", 0.9, 0.8, True), (">", 0.8, 0.8, False), (">", "5", 3, False), (">", MISSING, 1, False),
    (">=", 0.8, 0.8, True), (">=", 0.7, 0.8, False), (">=", None, 1, False),
    ("<", 1, 2, True), ("<", 2, 2, False), ("<", [1], 2, False),
    ("<=", 2, 2, True), ("<=", 3, 2, False), ("<=", {}, 2, False),
    ("in", "b", ["a", "b"], True), ("in", "c", ["a", "b"], False), ("in", 1, 5, False),
    ("in", MISSING, ["a"], False),
    ("not_in", "c", ["a", "b"], True), ("not_in", "a", ["a", "b"], False),
    ("not_in", 1, 5, False), ("not_in", MISSING, ["a"], False),
    ("contains", ["x", "y"], "y", True), ("contains", "passed all", "all", True),
    ("contains", ["x"], "z", False), ("contains", 42, "4", False),
    ("contains", MISSING, "x", False),
    ("exists", 0, None, True), ("exists", "", True, True), ("exists", MISSING, None, False),
    ("exists", None, True, False), ("exists", MISSING, False, True), ("exists", 1, False, False),
    ("exists", MISSING, "false", True), ("exists", "v", "no", False), ("exists", "v", "yes", True),
])
def test_builtin_operators(
    operators: PluginManager, name: str, actual: Any, expected: Any, result: bool
) -> None:
    assert operators.precondition_operator(name).compare(actual, expected) is result


def test_builtin_operator_names(operators: PluginManager) -> None:
    assert sorted(operators.precondition_operators()) == sorted(
        ["==", "!=", ">", ">=", "<", "<=", "in", "not_in", "contains", "exists"])


# -- the default scorer ----------------------------------------------------------------------

@pytest.fixture
def default_score(pm: PluginManager) -> Iterator[Callable[[TaskRequest, AgentRecord], float]]:
    """The built-in default scorer, through the facade."""
    name = register_builtin(pm, builtin_scoring)
    try:
        yield pm.scorer("default").score
    finally:
        pm.unregister(name)


def test_default_scorer_prefers_less_load(
    default_score: Callable[[TaskRequest, AgentRecord], float],
) -> None:
    req = request("python")
    agents = [agent("busy", load=3), agent("idle", load=0), agent("half", load=2)]
    ranked = sorted(agents, key=lambda a: default_score(req, a), reverse=True)
    assert [a.agent_id for a in ranked] == ["idle", "half", "busy"]


def test_default_scorer_prefers_higher_priority_weight(
    default_score: Callable[[TaskRequest, AgentRecord], float],
) -> None:
    req = request("python")
    low, high = agent("low", weight=10), agent("high", weight=90)
    assert default_score(req, high) > default_score(req, low)
    assert 0.0 <= default_score(req, low) <= 1.0 and default_score(req, high) <= 1.0


def test_default_scorer_prefers_specialists(
    default_score: Callable[[TaskRequest, AgentRecord], float],
) -> None:
    req = request("python")
    specialist = agent("spec", capabilities=("python",))
    generalist = agent("gen", capabilities=("python", "go", "rust", "java"))
    assert default_score(req, specialist) > default_score(req, generalist)


# -- the built-in decomposition strategies ------------------------------------------------------

@pytest.fixture
def strategies(pm: PluginManager) -> Iterator[PluginManager]:
    """A manager with the built-in strategies registered."""
    name = register_builtin(pm, builtin_strategies)
    try:
        yield pm
    finally:
        pm.unregister(name)


SPOKES = [
    agent("spoke-b", agent_type="backend-dev", capabilities=("api", "database")),
    agent("spoke-a", agent_type="frontend-dev", capabilities=("react", "css")),
]
OBJECTIVE = Objective(
    objective_id="shop",
    description="Build the shop",
    requirements=["Design the database schema and API", "Build the React pages with CSS",
                  "Write the API docs"],
)


def test_functional_assigns_by_matching_words(strategies: PluginManager) -> None:
    tasks = strategies.decomposer("functional").decompose(OBJECTIVE, SPOKES)
    assert [t.task_id for t in tasks] == ["shop-01", "shop-02", "shop-03"]
    assert [t.agent_type for t in tasks] == ["backend-dev", "frontend-dev", "backend-dev"]
    assert all(t.depends_on == [] for t in tasks)
    assert tasks[1].input_data["requirement"] == "Build the React pages with CSS"
    assert tasks[1].input_data["objective_id"] == "shop"


def test_sequential_chains_each_task_on_the_previous(strategies: PluginManager) -> None:
    tasks = strategies.decomposer("sequential").decompose(OBJECTIVE, SPOKES)
    assert [t.depends_on for t in tasks] == [[], ["shop-01"], ["shop-02"]]
    assert [t.agent_type for t in tasks] == ["backend-dev", "frontend-dev", "backend-dev"]


def test_parallel_deals_round_robin_in_agent_id_order(strategies: PluginManager) -> None:
    tasks = strategies.decomposer("parallel").decompose(OBJECTIVE, SPOKES)
    # spokes sorted by agent_id: spoke-a (frontend), spoke-b (backend)
    assert [t.agent_type for t in tasks] == ["frontend-dev", "backend-dev", "frontend-dev"]
    assert all(t.depends_on == [] for t in tasks)


def test_no_requirements_gives_one_task_for_the_description(strategies: PluginManager) -> None:
    objective = Objective(objective_id="solo", description="Fix the login bug")
    tasks = strategies.decomposer("functional").decompose(objective, SPOKES)
    assert [(t.task_id, t.input_data["requirement"]) for t in tasks] == [
        ("solo-01", "Fix the login bug")]


@pytest.mark.parametrize("strategy", ["functional", "sequential", "parallel"])
def test_no_spokes_is_a_definition_error(strategies: PluginManager, strategy: str) -> None:
    with pytest.raises(DefinitionError, match=r"objective 'shop': no spokes"):
        strategies.decomposer(strategy).decompose(OBJECTIVE, [])


def test_builtin_log_notifier_logs_one_line(
    pm: PluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    name = register_builtin(pm, builtin_notifiers)
    try:
        with captured_logs(caplog, "devcrew.notify", logging.INFO):
            pm.notifier("log").notify(Notification(
                event="workflow_failed", recipients=("ops@example.com",), subject="wf-1 failed"))
        assert "notify ops@example.com [workflow_failed]: wf-1 failed" in caplog.text
    finally:
        pm.unregister(name)



def test_a_stale_stevedore_cache_cannot_hide_a_plugin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stevedore import ExtensionManager

    # A stevedore cache that has never heard of any devcrew plugin.
    monkeypatch.setitem(ExtensionManager.ENTRY_POINT_CACHE, "devcrew", [])
    manager = PluginManager.discover(environ={})
    assert {"devcrew.stores", "devcrew_templates"} <= {r["name"] for r in manager.describe(True)}
    assert manager.load_failures == []


def test_an_entry_point_added_after_a_run_is_found(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist_info = site / "stale_pkg-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: stale-pkg\nVersion: 1.0\n")
    entry_points = dist_info / "entry_points.txt"
    entry_points.write_text("[devcrew]\nstale_old = stale_old_plugin\n")
    (site / "stale_old_plugin.py").write_text("")
    (site / "stale_new_plugin.py").write_text("")
    first = run_cli(site, "plugins")
    assert first.returncode == 0 and first.stderr == "", first.stderr
    # Add an entry point behind stevedore's back: same mtime, so a stevedore file cache
    # (where it is enabled) would still match and miss it.
    stat = entry_points.stat()
    entry_points.write_text(
        "[devcrew]\nstale_old = stale_old_plugin\nstale_new = stale_new_plugin\n")
    os.utime(entry_points, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = run_cli(site, "plugins")
    assert second.returncode == 0, second.stderr
    rows = {row["name"]: row for row in json.loads(second.stdout)}
    assert rows["stale_old"]["error"] is None
    assert rows["stale_new"]["error"] is None
    assert rows["stale_new"]["target"] == "stale_new_plugin"
    assert second.stderr == ""
