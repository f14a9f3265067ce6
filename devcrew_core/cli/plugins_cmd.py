"""``devcrew plugins``: list installed plugins, their hooks and load errors."""

from __future__ import annotations

import click

from devcrew_core.cli.output import output_option, render


@click.command("plugins")
@click.option("--all", "include_builtin", is_flag=True,
              help="Include the built-in plugins of devcrew_core.")
@output_option(default="json")
def plugins_command(include_builtin: bool, output: str) -> None:
    """List plugins as JSON: name, version, hooks, and the error of any that failed.

    A plugin that fails to import is listed with its error; the CLI keeps working.
    """
    from devcrew_core.plugins import get_plugin_manager

    rows = get_plugin_manager().describe(include_builtin=include_builtin)
    render(rows, output, columns=("name", "version", "hooks", "error"))
