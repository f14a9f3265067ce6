"""Settings: defaults < config file < environment < explicit arguments.

The config file is ``$DEVCREW_CONFIG`` if set, else ``$DEVCREW_HOME/config.yaml``
(``DEVCREW_HOME`` defaults to ``~/.devcrew``). Environment variables are
``DEVCREW_<SETTING>`` for every setting, plus the spec's ``REDIS_URL``, ``REDIS_DB``,
``REDIS_PASSWORD`` and ``POSTGRES_*`` names. Stores are chosen by URL: ``state_url``
and ``audit_url``. When they are not set, ``redis_url`` (if given) becomes the state
store, ``postgres_*`` (if ``postgres_host`` is given) the audit store, and otherwise
both live in ``sqlite:///$DEVCREW_HOME/devcrew.db``. A ``redis_url`` or ``postgres_*``
given at a *higher* precedence than ``state_url``/``audit_url`` wins over them; at the
same layer the explicit URL wins. When ``audit_url`` is not set and no PostgreSQL is
configured, the audit log follows ``state_url`` (so workers on many machines share it).

A leading ``~`` in paths is expanded with ``HOME`` from the environment mapping given
to :func:`load_settings`, so a test's ``environ`` fully decides which home is read.

Nothing is read at import time: call :func:`load_settings` when an object is built.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import yaml
from pydantic import Field, SecretStr, ValidationError

from devcrew_core.errors import ConfigError
from devcrew_core.models._base import DevcrewModel
from devcrew_core.validation import describe_validation_error

DEFAULT_HOME = "~/.devcrew"
CONFIG_FILE_NAME = "config.yaml"

#: Where each value came from, in increasing precedence.
LAYERS = ("default", "file", "env", "argument")

#: The spec's environment names; every setting is also read from DEVCREW_<NAME>.
SPEC_ENV_NAMES: dict[str, str] = {
    "redis_url": "REDIS_URL",
    "redis_db": "REDIS_DB",
    "redis_password": "REDIS_PASSWORD",
    "postgres_host": "POSTGRES_HOST",
    "postgres_port": "POSTGRES_PORT",
    "postgres_db": "POSTGRES_DB",
    "postgres_user": "POSTGRES_USER",
    "postgres_password": "POSTGRES_PASSWORD",
}

_POSTGRES_FIELDS = ("postgres_host", "postgres_port", "postgres_db", "postgres_user",
                    "postgres_password")

#: Settings whose values are never shown, not even in an error message.
SECRET_FIELDS = frozenset({"redis_password", "postgres_password"})

MASK = "********"


class Settings(DevcrewModel):
    """Every devcrew setting with its default. Passwords are ``SecretStr``."""

    home: Path = Field(default=Path(DEFAULT_HOME))
    state_url: str | None = None
    audit_url: str | None = None
    # Redis (the spec's names)
    redis_url: str | None = None
    redis_db: int = Field(default=0, ge=0)
    redis_password: SecretStr | None = None
    redis_key_prefix: str = Field(default="devcrew", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    connection_pool_size: int = Field(default=10, ge=1)
    # PostgreSQL (the spec's names)
    postgres_host: str | None = None
    postgres_port: int = Field(default=5432, ge=1, le=65535)
    postgres_db: str = "multi_agent_platform"
    postgres_user: str | None = None
    postgres_password: SecretStr | None = None
    postgres_minconn: int = Field(default=1, ge=1)
    postgres_maxconn: int = Field(default=10, ge=1)
    # Platform
    agent_ttl_seconds: float = Field(default=300, gt=0)
    agent_heartbeat_interval: float = Field(default=60, gt=0)
    task_timeout_default: float = Field(default=3600, gt=0)
    workflow_timeout_default: float = Field(default=7200, gt=0)
    default_cpu_cores: float = Field(default=2, ge=0)
    default_memory_mb: float = Field(default=2048, ge=0)
    #: A waiting resource request gains one priority level per this many seconds.
    resource_aging_seconds: float = Field(default=30, gt=0)
    #: How often allocators remove expired reservations (they never count anyway).
    reservation_cleanup_interval: float = Field(default=5, gt=0)
    default_max_concurrent_tasks: int = Field(default=3, ge=1)
    executor: str = "local"
    scorer: str = "default"
    log_level: str = Field(default="INFO", pattern=r"(?i)^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    # Celery
    celery_broker_url: str | None = None
    celery_result_backend: str | None = None
    celery_task_serializer: str = Field(default="json", pattern="^json$")
    celery_result_serializer: str = Field(default="json", pattern="^json$")
    # Not a setting users write: where each value came from and which file was read.
    sources: dict[str, str] = Field(default_factory=dict, exclude=True)
    config_file: Path | None = Field(default=None, exclude=True)

    @property
    def database_path(self) -> Path:
        """The embedded SQLite file under ``home``."""
        return self.home / "devcrew.db"

    def display(self) -> dict[str, Any]:
        """All settings as plain values with passwords (and passwords in URLs) masked."""
        shown: dict[str, Any] = {}
        for name in type(self).model_fields:
            if name in ("sources", "config_file"):
                continue
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = MASK
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, str) and "://" in value:
                value = mask_url(value)
            shown[name] = value
        return shown

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        # URLs may carry a password (a derived state_url always does when
        # redis_password is set), so repr() and str() show them masked.
        for name, value in super().__repr_args__():
            if isinstance(value, str) and "://" in value:
                value = mask_url(value)
            yield name, value


USER_FIELDS = tuple(n for n in Settings.model_fields if n not in ("sources", "config_file"))


_QUERY_PASSWORD = re.compile(r"(?i)((?:^|&)[^=&]*password=)[^&]*")
_FALLBACK_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def mask_url(url: str) -> str:
    """Replace the password of a URL (``user:password@`` or a ``password=`` query
    parameter) with ``********``; the rest is returned exactly as written. Never
    raises, even for a malformed URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _FALLBACK_PASSWORD.sub(rf"\1{MASK}@", url, count=1)
    masked = url
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        masked = masked.replace(parts.netloc, f"{user}:{MASK}@{hostport}", 1)
    if "password=" in parts.query.lower():
        query = _QUERY_PASSWORD.sub(rf"\1{MASK}", parts.query)
        masked = masked.replace(f"?{parts.query}", f"?{query}", 1)
    return masked


def _expand_user(path: str | os.PathLike[str], environ: Mapping[str, str]) -> Path:
    """Expand a leading ``~`` with ``environ["HOME"]`` when set, else the user's home."""
    text = os.fspath(path)
    home = environ.get("HOME")
    if home and text[:1] == "~" and text[1:2] in ("", "/", os.sep):
        return Path(home + text[1:])
    return Path(text).expanduser()


def _env_values(environ: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    values, origins = {}, {}
    for name in USER_FIELDS:
        for var in (SPEC_ENV_NAMES.get(name), f"DEVCREW_{name.upper()}"):
            if var and environ.get(var, "") != "":
                values[name], origins[name] = environ[var], var
    return values, origins


def _config_path(
    explicit: str | os.PathLike[str] | None, home: Path, environ: Mapping[str, str]
) -> tuple[Path, bool]:
    """Return (path, required): an explicitly named file must exist."""
    if explicit is not None:
        return _expand_user(explicit, environ), True
    if environ.get("DEVCREW_CONFIG"):
        return _expand_user(environ["DEVCREW_CONFIG"], environ), True
    return home / CONFIG_FILE_NAME, False


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a config file (YAML or JSON) into a dict, with clear errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or exc
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    unknown = [str(k) for k in data if k not in USER_FIELDS]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, USER_FIELDS, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(hints)}")
    return data


def _validate_layer(values: Mapping[str, Any], source: str) -> None:
    """Validate one layer on its own so an error names the layer it came from."""
    try:
        Settings.model_validate(dict(values))
    except ValidationError as exc:
        raise ConfigError(
            describe_validation_error(exc, source, secret_fields=SECRET_FIELDS)
        ) from exc


def _redis_state_url(settings: Settings) -> str:
    parts = urlsplit(settings.redis_url or "")
    if settings.redis_password is not None and parts.password is None:
        secret = quote(settings.redis_password.get_secret_value(), safe="")
        # The user part is kept as written (already percent-encoded, if at all).
        user, _, hostport = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{user}:{secret}@{hostport}")
    if settings.redis_db and parts.path in ("", "/"):
        parts = parts._replace(path=f"/{settings.redis_db}")
    return urlunsplit(parts)


def _postgres_audit_url(settings: Settings) -> str:
    user = quote(settings.postgres_user or "", safe="")
    secret = settings.postgres_password
    credentials = user
    if secret is not None:
        credentials += ":" + quote(secret.get_secret_value(), safe="")
    netloc = f"{credentials}@" if credentials else ""
    netloc += f"{settings.postgres_host}:{settings.postgres_port}"
    return f"postgresql://{netloc}/{quote(settings.postgres_db, safe='')}"


def _rank(source: str) -> int:
    return LAYERS.index(source.split(":", 1)[0])


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build :class:`Settings` from defaults, the config file, the environment and
    ``overrides`` (explicit arguments; ``None`` values are ignored).

    Raises :class:`ConfigError` naming the file or variable, the setting and the value.
    """
    env = os.environ if environ is None else environ
    explicit = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(explicit) - set(USER_FIELDS))
    if unknown:
        raise ConfigError(f"unknown setting argument(s): {', '.join(unknown)}")
    env_values, env_origins = _env_values(env)
    for name, value in env_values.items():
        _validate_layer({name: value}, f"environment variable {env_origins[name]}")
    _validate_layer(explicit, "arguments")

    home_raw = explicit.get("home") or env_values.get("home") or DEFAULT_HOME
    home = _expand_user(home_raw, env)
    path, required = _config_path(config_file, home, env)
    file_values: dict[str, Any] = {}
    if path.exists() or required:
        file_values = read_config_file(path)
        _validate_layer(file_values, str(path))

    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer, values in (("file", file_values), ("env", env_values), ("argument", explicit)):
        for name, value in values.items():
            merged[name] = value
            origin = env_origins.get(name, "") if layer == "env" else ""
            sources[name] = f"{layer}:{origin}" if origin else layer
    merged.setdefault("home", str(home))
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:  # pragma: no cover - each layer was validated above
        raise ConfigError(
            describe_validation_error(exc, "settings", secret_fields=SECRET_FIELDS)
        ) from exc
    settings.__dict__["home"] = _expand_user(settings.home, env)
    settings.__dict__["config_file"] = path if file_values or path.exists() else None

    def source(name: str) -> str:
        return sources.get(name, "default")

    default_db = f"sqlite:///{settings.database_path}"
    if settings.redis_url and _rank(source("redis_url")) > _rank(source("state_url")):
        settings.__dict__["state_url"] = _redis_state_url(settings)
        sources["state_url"] = f"derived from redis_url ({source('redis_url')})"
    elif settings.state_url is None:
        settings.__dict__["state_url"] = default_db
    pg_rank = max(_rank(source(f)) for f in _POSTGRES_FIELDS)
    if settings.postgres_host and pg_rank > _rank(source("audit_url")):
        settings.__dict__["audit_url"] = _postgres_audit_url(settings)
        sources["audit_url"] = "derived from postgres_*"
    elif settings.audit_url is None:
        settings.__dict__["audit_url"] = (
            default_db if source("state_url") == "default" else settings.state_url
        )
    settings.__dict__["sources"] = {name: source(name) for name in USER_FIELDS}
    return settings
