"""The installed devcrew version (kept import-light for ``devcrew --version``)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("devcrew")
except PackageNotFoundError:  # pragma: no cover - running from an uninstalled checkout
    __version__ = "0+unknown"
