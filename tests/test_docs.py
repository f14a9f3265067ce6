"""Every hook is documented in ``docs/plugins.md`` under its exact signature, and every
hook has a test in ``tests/test_plugins.py``."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy
import pytest

from devcrew_core import hookspecs

ROOT = Path(__file__).resolve().parent.parent
PLUGINS_DOC = ROOT / "docs" / "plugins.md"
PLUGIN_TESTS = ROOT / "tests" / "test_plugins.py"


def _hookspec_names() -> list[str]:
    """The hooks pluggy finds in devcrew_core.hookspecs."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    names = sorted(
        name for name in vars(manager.hook)
        if not name.startswith("_") and getattr(manager.hook, name).has_spec()
    )
    # Cross-check: every devcrew_ function in the module is a hookspec and vice versa.
    declared = sorted(
        name for name, value in vars(hookspecs).items()
        if name.startswith(f"{hookspecs.PROJECT}_") and callable(value)
    )
    assert names == declared
    return names


HOOKS = _hookspec_names()


def _annotation(value: Any) -> str:
    # With `from __future__ import annotations` every annotation is already its source text.
    return value if isinstance(value, str) else inspect.formatannotation(value)


def signature_text(name: str, function: Callable[..., Any]) -> str:
    """``name(params) -> return`` as written in hookspecs.py."""
    signature = inspect.signature(function)
    params = []
    for param in signature.parameters.values():
        text = param.name
        if param.annotation is not inspect.Parameter.empty:
            text += f": {_annotation(param.annotation)}"
        if param.default is not inspect.Parameter.empty:
            text += f" = {param.default!r}"
        params.append(text)
    text = f"{name}({', '.join(params)})"
    if signature.return_annotation is not inspect.Signature.empty:
        text += f" -> {_annotation(signature.return_annotation)}"
    return text


def documented_headings() -> list[str]:
    """The level-3 headings of docs/plugins.md that document a hook."""
    pattern = re.compile(rf"^### `({hookspecs.PROJECT}_[^`]*)`\s*$", re.MULTILINE)
    return pattern.findall(PLUGINS_DOC.read_text(encoding="utf-8"))


def test_hooks_are_found() -> None:
    assert len(HOOKS) >= 9
    assert "devcrew_scorers" in HOOKS and "devcrew_cli_commands" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_exact_signature(hook: str) -> None:
    expected = signature_text(hook, getattr(hookspecs, hook))
    headings = documented_headings()
    assert expected in headings, (
        f"docs/plugins.md needs a section headed:\n### `{expected}`\n"
        f"(hook headings found: {headings})"
    )
    assert headings.count(expected) == 1


def test_every_documented_hook_exists() -> None:
    documented = {heading.partition("(")[0] for heading in documented_headings()}
    assert documented == set(HOOKS), "docs/plugins.md documents hooks that do not exist"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook: str) -> None:
    source = PLUGIN_TESTS.read_text(encoding="utf-8")
    # A plugin in the tests implements the hook by name (not only mentions it).
    assert re.search(rf"\bdef {hook}\(", source), (
        f"tests/test_plugins.py registers no plugin implementing {hook}()"
    )


def test_signature_text_reflects_parameters() -> None:
    def devcrew_example(settings: int, verbose: bool = False) -> list[str]:
        return []

    assert signature_text("devcrew_example", devcrew_example) == (
        "devcrew_example(settings: int, verbose: bool = False) -> list[str]")
