"""Plugin discovery, registration and the typed facade the core calls hooks through.

Writing a plugin
----------------
1. Write a module with one or more hook implementations (all hooks are listed in
   :mod:`devcrew_core.hookspecs` and documented in ``docs/plugins.md``)::

       # my_plugin.py
       from devcrew_core import hookimpl
       from devcrew_core.plugin_types import Scorer

       @hookimpl
       def devcrew_scorers():
           yield Scorer(name="idle-first", score=lambda request, agent: -agent.current_load)

2. Register it under the ``devcrew`` entry-point group in your ``pyproject.toml``::

       [project.entry-points.devcrew]
       my_plugin = "my_plugin"

3. ``pip install`` it; ``devcrew plugins`` lists it with its hooks.

Built-in plugins (``devcrew_core.default_plugins``) and the bundled ones (``plugins/``)
are registered by exactly the same entry-point path. A plugin that fails to import is
reported (``devcrew plugins`` shows its error, a warning is logged) and never stops the
CLI. ``DEVCREW_LOAD_PLUGINS=a,b`` loads only those non-built-in plugins;
``DEVCREW_DISABLE_PLUGINS=a,b`` skips plugins by name, except the essential built-ins.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import logging
import os
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import pluggy

from devcrew_core import hookspecs
from devcrew_core.errors import PluginError, UsageError
from devcrew_core.plugin_types import (
    AgentRunner,
    CliCommand,
    Decomposer,
    Executor,
    Notifier,
    PreconditionOperator,
    Scorer,
    StoreBackend,
    TemplateEntry,
)

logger = logging.getLogger("devcrew.plugins")

ENTRY_POINT_GROUP = "devcrew"
BUILTIN_MODULE_PREFIX = "devcrew_core.default_plugins"
#: Built-ins the core cannot run without; they cannot be disabled.
ESSENTIAL_PLUGINS = frozenset({"devcrew.stores", "devcrew.scoring", "devcrew.operators",
                               "devcrew.executors", "devcrew.runners"})

R = TypeVar("R", Scorer, Decomposer, PreconditionOperator, Notifier, StoreBackend, Executor,
            AgentRunner, TemplateEntry, CliCommand)


@dataclass(frozen=True)
class LoadFailure:
    """A plugin that could not be loaded, with its error."""

    name: str
    target: str
    error: str
    traceback: str
    version: str | None = None


@dataclass(frozen=True)
class _Origin:
    target: str
    version: str | None
    builtin: bool


def _names_from_env(variable: str, environ: Mapping[str, str]) -> set[str] | None:
    raw = environ.get(variable)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def resolve_ref(ref: Any, owner: str = "plugin") -> Any:
    """Return ``ref`` itself, or import it when it is a ``"module:attribute"`` string."""
    if not isinstance(ref, str):
        return ref
    module_name, _, attr_path = ref.partition(":")
    if not module_name or not attr_path:
        raise PluginError(f"{owner}: invalid import path {ref!r} (expected 'module:attribute')")
    try:
        target: Any = importlib.import_module(module_name)
        for attr in attr_path.split("."):
            target = getattr(target, attr)
    except Exception as exc:
        raise PluginError(f"{owner}: cannot import {ref!r}: {type(exc).__name__}: {exc}") from exc
    return target


class PluginManager:
    """devcrew's plugin manager: owns the pluggy manager and offers one typed method
    per hook, so the rest of the core never calls ``pm.hook`` directly."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._origins: dict[str, _Origin] = {}
        self.load_failures: list[LoadFailure] = []
        self._records: dict[str, dict[str, Any]] = {}

    # -- discovery and registration ----------------------------------------------------------
    @classmethod
    def discover(cls, environ: Mapping[str, str] | None = None) -> PluginManager:
        """Load every plugin of the ``devcrew`` entry-point group, honouring the
        ``DEVCREW_LOAD_PLUGINS`` / ``DEVCREW_DISABLE_PLUGINS`` controls in ``environ``."""
        from stevedore import NamedExtensionManager  # deferred: only needed to load plugins

        env = os.environ if environ is None else environ
        only, disabled = (_names_from_env(v, env) for v in
                          ("DEVCREW_LOAD_PLUGINS", "DEVCREW_DISABLE_PLUGINS"))
        blocked = sorted((disabled or set()) & ESSENTIAL_PLUGINS)
        if blocked:
            raise UsageError(
                f"DEVCREW_DISABLE_PLUGINS: {', '.join(blocked)} cannot be disabled "
                "(the core needs it); remove it from the list"
            )
        manager = cls()
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        # stevedore's cached entry points carry no distribution, so versions come from here.
        versions = {ep.name: _version_of(ep) for ep in entry_points}
        targets = {ep.name: ep.value for ep in entry_points}
        for variable, names in (("DEVCREW_LOAD_PLUGINS", only),
                                ("DEVCREW_DISABLE_PLUGINS", disabled)):
            unknown = sorted((names or set()) - set(versions))
            if unknown:
                logger.warning("%s names no installed plugin: %s (installed: %s)", variable,
                               ", ".join(unknown), ", ".join(sorted(versions)))
        selected = []
        for ep in entry_points:
            builtin = ep.value.startswith(BUILTIN_MODULE_PREFIX)
            if disabled and ep.name in disabled:
                continue
            if only is not None and not builtin and ep.name not in only:
                continue
            selected.append(ep.name)

        def on_failure(_mgr: Any, ep: importlib.metadata.EntryPoint, exc: BaseException) -> None:
            manager._record_failure(ep.name, ep.value, exc, versions.get(ep.name))

        # Hand stevedore the entry points importlib.metadata sees *now*. Its own on-disk
        # cache can lag behind an install and would silently hide a new plugin.
        NamedExtensionManager.ENTRY_POINT_CACHE[ENTRY_POINT_GROUP] = list(entry_points)
        missing: set[str] = set()
        extensions: NamedExtensionManager[Any] = NamedExtensionManager(
            ENTRY_POINT_GROUP,
            names=sorted(set(selected)),
            name_order=True,
            on_load_failure_callback=on_failure,
            on_missing_entrypoints_callback=lambda names: missing.update(names),
        )
        # stevedore also counts a plugin that failed to import as missing; it is reported.
        for name in sorted(missing - {failure.name for failure in manager.load_failures}):
            manager._record_failure(name, targets[name], PluginError(
                "entry point listed by importlib.metadata but not loaded by stevedore"
            ), versions.get(name))
        for ext in extensions:
            manager.register(
                ext.plugin,
                name=ext.name,
                target=ext.entry_point.value,
                version=versions.get(ext.name),
            )
        return manager

    def _record_failure(
        self, name: str, target: str, exc: BaseException, version: str | None = None
    ) -> None:
        failure = LoadFailure(
            name=name,
            target=target,
            error=f"{type(exc).__name__}: {exc}",
            traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
            version=version,
        )
        self.load_failures.append(failure)
        # One line per broken plugin; the traceback is logged at debug level (--debug).
        logger.warning("plugin %r failed to load: %s", name, " ".join(failure.error.split()))
        logger.debug("%s", failure.traceback)

    def register(
        self,
        plugin: ModuleType | object,
        name: str | None = None,
        *,
        target: str | None = None,
        version: str | None = None,
    ) -> str:
        """Register a plugin object or module and return its name.

        A plugin that cannot be registered (its name is taken, it is already registered,
        or a hook implementation does not match the hookspecs, e.g. a misspelt hook
        name) is reported as a load failure and left unregistered; plugins registered
        before it are untouched.
        """
        plugin_name: str = name or getattr(plugin, "__name__", None) or repr(plugin)
        target = target or str(getattr(plugin, "__name__", plugin_name))
        problem: str | None = None
        if self._pm.has_plugin(plugin_name):
            other = self._origins.get(plugin_name)
            problem = (
                f"plugin name {plugin_name!r} is already registered"
                f"{f' (by {other.target})' if other else ''}; disable one with "
                "DEVCREW_DISABLE_PLUGINS or rename its entry point"
            )
        elif self._pm.is_registered(plugin):
            problem = (f"plugin {target!r} is already registered as "
                       f"{self._pm.get_name(plugin)!r}")
        if problem is not None:
            self._record_failure(plugin_name, target, PluginError(problem), version)
            return plugin_name
        try:
            self._pm.register(plugin, name=plugin_name)
            self._check_hook_names(plugin, plugin_name)
        except (pluggy.PluginValidationError, PluginError) as exc:
            # pluggy has already added the plugin when validation fails: take it out again.
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            self._record_failure(plugin_name, target, exc, version)
            return plugin_name
        builtin = target.startswith(BUILTIN_MODULE_PREFIX)
        self._origins[plugin_name] = _Origin(target=target, version=version, builtin=builtin)
        self._records.clear()
        return plugin_name

    def _check_hook_names(self, plugin: object, plugin_name: str) -> None:
        """Reject hook implementations that match no hookspec (usually a typo)."""
        for caller in self._pm.get_hookcallers(plugin) or ():
            if caller.has_spec():
                continue
            if all(impl.optionalhook for impl in caller.get_hookimpls() if impl.plugin is plugin):
                continue
            close = difflib.get_close_matches(caller.name, _hook_names(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise PluginError(
                f"plugin {plugin_name!r} implements unknown hook {caller.name!r}{hint} "
                f"(hooks are listed in devcrew_core.hookspecs)"
            )

    def unregister(self, name: str) -> None:
        """Remove a registered plugin by name (used by tests and embedding apps)."""
        self._pm.unregister(name=name)
        self._origins.pop(name, None)
        self._records.clear()

    def describe(self, include_builtin: bool = False) -> list[dict[str, Any]]:
        """One dict per plugin: ``name``, ``version``, ``hooks``, ``builtin``, ``error``."""
        rows: list[dict[str, Any]] = []
        for name, plugin in self._pm.list_name_plugin():
            origin = self._origins.get(name, _Origin(target=name, version=None, builtin=False))
            if origin.builtin and not include_builtin:
                continue
            hooks = sorted(caller.name for caller in self._pm.get_hookcallers(plugin) or ())
            rows.append({
                "name": name, "version": origin.version, "hooks": hooks,
                "builtin": origin.builtin, "target": origin.target, "error": None,
            })
        for failure in self.load_failures:
            rows.append({
                "name": failure.name, "version": failure.version, "hooks": [],
                "builtin": failure.target.startswith(BUILTIN_MODULE_PREFIX),
                "target": failure.target, "error": failure.error,
            })
        return sorted(rows, key=lambda row: row["name"])

    # -- collecting records ----------------------------------------------------------------
    def _collect(self, hook_name: str, kind: type[R]) -> dict[str, R]:
        cached = self._records.get(hook_name)
        if cached is not None:
            return cast(dict[str, R], cached)
        found: dict[str, R] = {}
        providers: dict[str, str] = {}
        caller = getattr(self._pm.hook, hook_name)
        # get_hookimpls() is in registration order (pluggy *calls* them in reverse), so
        # records come built-ins first, then other plugins in the order they loaded.
        for impl in caller.get_hookimpls():
            if impl.wrapper or impl.hookwrapper:
                continue  # wrappers observe hook calls; they contribute no records
            for record in _records_of(impl.function, impl.plugin_name, hook_name, kind):
                if record.name in found:
                    raise PluginError(
                        f"{kind.__name__} {record.name!r} is provided twice: by "
                        f"{self._label(providers[record.name])} and by "
                        f"{self._label(impl.plugin_name)}; disable one with "
                        "DEVCREW_DISABLE_PLUGINS or rename it"
                    )
                found[record.name] = record
                providers[record.name] = impl.plugin_name
        self._records[hook_name] = found
        return found

    def _label(self, plugin_name: str) -> str:
        origin = self._origins.get(plugin_name)
        version = f" {origin.version}" if origin and origin.version else ""
        return f"plugin {plugin_name!r}{version}"

    @staticmethod
    def _pick(records: Mapping[str, R], name: str, what: str) -> R:
        try:
            return records[name]
        except KeyError:
            known = ", ".join(sorted(records)) or "none"
            raise PluginError(f"unknown {what} {name!r} (available: {known})") from None

    # -- the typed facade: one method per hook ---------------------------------------------
    def scorers(self) -> dict[str, Scorer]:
        """Every agent scorer, by name."""
        return self._collect("devcrew_scorers", Scorer)

    def scorer(self, name: str) -> Scorer:
        """The scorer called ``name``."""
        return self._pick(self.scorers(), name, "scorer")

    def decomposers(self) -> dict[str, Decomposer]:
        """Every decomposition strategy, by name."""
        return self._collect("devcrew_decomposition_strategies", Decomposer)

    def decomposer(self, name: str) -> Decomposer:
        """The decomposition strategy called ``name``."""
        return self._pick(self.decomposers(), name, "decomposition strategy")

    def precondition_operators(self) -> dict[str, PreconditionOperator]:
        """Every precondition operator, by name."""
        return self._collect("devcrew_precondition_operators", PreconditionOperator)

    def precondition_operator(self, name: str) -> PreconditionOperator:
        """The precondition operator called ``name``."""
        return self._pick(self.precondition_operators(), name, "precondition operator")

    def notifiers(self) -> dict[str, Notifier]:
        """Every notifier, by name."""
        return self._collect("devcrew_notifiers", Notifier)

    def notifier(self, name: str) -> Notifier:
        """The notifier called ``name``."""
        return self._pick(self.notifiers(), name, "notifier")

    def store_backends(self) -> dict[str, StoreBackend]:
        """Every store backend, by name."""
        return self._collect("devcrew_store_backends", StoreBackend)

    def store_backend_for(self, url: str) -> StoreBackend:
        """The store backend that handles the scheme of ``url``.

        Only the scheme appears in errors: the rest of a URL may hold a password.
        """
        scheme = urlsplit(url).scheme.lower()
        backends = self.store_backends()
        claimed = [b for b in backends.values() if scheme in {s.lower() for s in b.schemes}]
        if len(claimed) > 1:
            names = " and ".join(f"{b.name!r}" for b in claimed)
            raise PluginError(
                f"URL scheme {scheme!r} is claimed by store backends {names}; disable the "
                "plugin of one with DEVCREW_DISABLE_PLUGINS"
            )
        if claimed:
            return claimed[0]
        known = sorted(s.lower() for b in backends.values() for s in b.schemes)
        hint = ""
        if scheme in {"redis", "rediss", "postgresql", "postgres"}:
            hint = "; is the matching devcrew plugin installed and enabled?"
        raise PluginError(
            f"no store backend for URL scheme {scheme!r} (known: {', '.join(known)}){hint}"
        )

    def executors(self) -> dict[str, Executor]:
        """Every executor, by name."""
        return self._collect("devcrew_executors", Executor)

    def executor(self, name: str) -> Executor:
        """The executor called ``name``."""
        return self._pick(self.executors(), name, "executor")

    def agent_runners(self) -> dict[str, AgentRunner]:
        """Every agent runner kind, by name."""
        return self._collect("devcrew_agent_runners", AgentRunner)

    def agent_runner(self, kind: str) -> AgentRunner:
        """The agent runner for ``kind``."""
        return self._pick(self.agent_runners(), kind, "agent runner kind")

    def build_runner(self, spec: Mapping[str, Any]) -> Any:
        """Build the runner an agent's runner declaration (``{"kind": ...}``) describes;
        the kind's factory validates the declaration and raises on a bad one."""
        kind = str(spec.get("kind"))
        record = self.agent_runner(kind)
        return resolve_ref(record.factory, owner=f"agent runner {kind!r}")(spec)

    def workflow_templates(self) -> dict[str, TemplateEntry]:
        """Every workflow template, by name."""
        return self._collect("devcrew_workflow_templates", TemplateEntry)

    def workflow_template(self, name: str) -> TemplateEntry:
        """The workflow template called ``name``."""
        return self._pick(self.workflow_templates(), name, "workflow template")

    def cli_commands(self) -> dict[str, CliCommand]:
        """Every plugin CLI command, by name."""
        return self._collect("devcrew_cli_commands", CliCommand)


def _hook_names() -> list[str]:
    return [name for name in vars(hookspecs) if name.startswith(f"{hookspecs.PROJECT}_")]


def _records_of(function: Any, plugin_name: str, hook_name: str, kind: type[R]) -> list[R]:
    """Call one hook implementation and check that it gave an iterable of ``kind``."""
    where = f"plugin {plugin_name!r}: {hook_name}()"
    try:
        produced = function()
        if isinstance(produced, kind):
            raise PluginError(
                f"{where} returned a single {kind.__name__}; return a list or yield records"
            )
        records = list(produced or ())
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(f"{where} raised {type(exc).__name__}: {exc}") from exc
    for record in records:
        if not isinstance(record, kind):
            raise PluginError(
                f"{where} returned {type(record).__name__}, expected {kind.__name__}"
            )
        if not isinstance(record.name, str) or not record.name.strip():
            raise PluginError(
                f"{where} returned a {kind.__name__} with an empty name ({record.name!r})"
            )
    return records


def _version_of(ep: importlib.metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return None if dist is None else str(dist.version)


_default: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, discovered on first use."""
    global _default
    if _default is None:
        _default = PluginManager.discover()
    return _default


def reset_plugin_manager(manager: PluginManager | None = None) -> None:
    """Forget (or replace) the process-wide manager; the next use discovers again."""
    global _default
    _default = manager


