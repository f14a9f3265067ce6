"""Output formats shared by every command: ``--output/--format table|json|yaml``."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click

FORMATS = ("table", "json", "yaml")
#: Table width when the output is not a terminal.
WIDE = 200
F = TypeVar("F", bound=Callable[..., Any])


def output_option(default: str = "table") -> Callable[[F], F]:
    """Add ``--output/--format/-o`` with the choices table, json and yaml."""
    return click.option(
        "--output",
        "--format",
        "-o",
        "output",
        type=click.Choice(FORMATS, case_sensitive=False),
        default=default,
        show_default=True,
        help="How to print the result.",
    )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, separators=(",", ":"))
    return str(value)


def render(
    data: Any, fmt: str, columns: Sequence[str] | None = None, title: str | None = None
) -> None:
    """Print ``data`` (a mapping or a list of mappings) as a rich table, JSON or YAML."""
    fmt = fmt.lower()
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, default=str))
        return
    if fmt == "yaml":
        import yaml  # only for this format: keeps `devcrew --version` light

        click.echo(yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False),
                   nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    if isinstance(data, Mapping):
        table.add_column("key")
        table.add_column("value", overflow="fold")
        for key, value in data.items():
            table.add_row(str(key), _cell(value))
    else:
        rows = list(data)
        names = list(columns or (rows[0].keys() if rows else ()))
        for name in names:
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*(_cell(row.get(name)) for name in names))
    console = Console(soft_wrap=False)
    if not console.is_terminal:
        # Piped into a file or a log: 80 columns would fold every ID; be wide instead.
        console = Console(soft_wrap=False, width=WIDE)
    console.print(table)
