"""Developer sessions: ``nox -s tests lint typecheck`` (CI) and ``nox -s bench``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (real servers are started by the fixtures)."""
    session.install("-e", ".[all,test]")
    session.run("python", "-m", "pytest", *(session.posargs or ["-q"]))


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint and import order."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the core and the bundled plugins."""
    session.install("-e", ".[all,test]")
    session.run("mypy")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks, reported as ratios against floors measured in the same run:
    ``benchmarks.engine``, ``benchmarks.delegation`` (which starts its own
    ``redis-server`` and skips redis, saying why, when it is not installed) and
    ``benchmarks.allocation`` (which also starts a PostgreSQL cluster, skipped likewise),
    each in a fresh process so one cannot skew the other (``python -m benchmarks`` runs
    them all in one). ``nox -s bench -- --quick`` for smaller sizes."""
    session.install("-e", ".[all,test]")
    session.run("python", "-m", "benchmarks.engine", *session.posargs)
    session.run("python", "-m", "benchmarks.delegation", *session.posargs)
    session.run("python", "-m", "benchmarks.allocation", *session.posargs)
