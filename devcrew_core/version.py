"""The devcrew version: the single source pyproject.toml reads it from (a plain string,
so ``devcrew --version`` imports nothing to find it)."""

__version__ = "0.1.0"
