"""Connecting to Redis: the store's URL options, the connection pool, and errors that
name the server without ever showing its password.

``redis://[[user]:password@]host[:port][/db][?prefix=name&<redis-py option>=...]`` and
``rediss://`` (TLS) are accepted. ``prefix`` is the store's own option (the key
prefix); every other query option goes to redis-py as written (``socket_timeout=5``,
``ssl_cert_reqs=none``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis import BlockingConnectionPool, Redis
from redis import exceptions as rex

from devcrew_core.config import MASK, mask_url
from devcrew_core.errors import ConfigError, StoreError

SCHEMES = ("redis", "rediss")
DEFAULT_PREFIX = "devcrew"
#: Options the store sets unless the URL gives them: fail fast when the server is
#: unreachable, and never wait forever for an answer.
DEFAULT_OPTIONS: dict[str, float] = {"socket_connect_timeout": 5.0, "socket_timeout": 30.0}
#: How long a caller waits for a free pooled connection before giving up.
POOL_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class RedisTarget:
    """A parsed store URL."""

    #: The URL handed to redis-py (the store's own options removed).
    client_url: str
    #: The URL as given, password masked: for messages and ``Store.url``.
    shown: str
    #: The key prefix: ``?prefix=`` if given, else the setting, else ``devcrew``.
    prefix: str
    #: Whether the URL carries a password (then it wins over ``redis_password``).
    has_password: bool


def shown_url(url: str) -> str:
    """``url`` with its password masked, even when the URL is malformed (a password
    with an unencoded ``/`` or ``@``, say): everything before the last ``@`` after the
    scheme, except a user name, is hidden. Masking too much is harmless."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if sep and at and ":" in userinfo:
        url = f"{scheme}://{userinfo.split(':', 1)[0]}:{MASK}@{hostpart}"
    return mask_url(url)


def _invalid(url: str, shown: str, exc: Exception) -> ConfigError:
    # The parser's message may quote a piece of a mis-encoded password: show it only
    # when the URL carries no credentials.
    if "@" in url.partition("://")[2]:
        detail = "check that special characters in the user and password are %-encoded"
    else:
        detail = str(exc)
    return ConfigError(f"invalid Redis URL {shown}: {detail}")


def parse_target(url: str, default_prefix: str = DEFAULT_PREFIX) -> RedisTarget:
    """Split a store URL into what redis-py needs and the store's own options."""
    shown = shown_url(url)
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None
    except ValueError as exc:
        raise _invalid(url, shown, exc) from None
    if parts.scheme.lower() not in SCHEMES:
        raise ConfigError(f"not a Redis URL: {shown} (expected redis:// or rediss://)")
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for name, value in query if name == "prefix"]
    rest = [(name, value) for name, value in query if name != "prefix"]
    client_url = urlunsplit(parts._replace(query=urlencode(rest)))
    prefix = prefixes[-1] if prefixes else default_prefix
    return RedisTarget(client_url=client_url, shown=shown, prefix=prefix,
                       has_password=has_password)


def connect(target: RedisTarget, *, password: str | None, pool_size: int) -> Redis:
    """A client over a pool of at most ``pool_size`` connections; callers beyond that
    wait for a free one. ``password`` is used when the URL carries none.

    redis-py retries nothing here: a script whose reply was lost may have run, and
    running it again (appending audit records twice, say) would be wrong.
    """
    options: dict[str, object] = {
        **DEFAULT_OPTIONS,
        "max_connections": pool_size,
        "timeout": POOL_WAIT_SECONDS,
        "decode_responses": True,
        "client_name": "devcrew",
    }
    if password is not None and not target.has_password:
        options["password"] = password
    try:
        # Options in the URL's query win over these (redis-py's rule).
        pool = BlockingConnectionPool.from_url(target.client_url, **options)
    except (ValueError, TypeError) as exc:
        raise _invalid(target.client_url, target.shown, exc) from None
    return Redis(connection_pool=pool)


def store_error(exc: rex.RedisError, shown: str) -> StoreError:
    """A :class:`StoreError` for a redis-py error, naming the server by its masked URL.

    redis-py's messages carry host and port, never the password.
    """
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, rex.AuthenticationError):
        return StoreError(
            f"Redis at {shown} refused the credentials ({detail}); check the user and "
            "password in the URL or the redis_password setting (REDIS_PASSWORD)"
        )
    if isinstance(exc, rex.NoPermissionError):
        return StoreError(f"Redis at {shown}: the user lacks a permission ({detail})")
    if isinstance(exc, (rex.ConnectionError, rex.TimeoutError)):
        return StoreError(f"cannot reach Redis at {shown}: {detail}")
    return StoreError(f"Redis at {shown}: {detail}")
