"""The ``http`` runner: POST the call as JSON to an endpoint, use the JSON object it
answers as the task's output.

::

    {"kind": "http", "url": "https://agents.example/run",
     "headers": {"Authorization": "Bearer ..."}, "timeout": 30}

Standard library only: :mod:`urllib.request` in a worker thread. The request has the
headers ``Content-Type: application/json``, ``Accept: application/json`` and
``Idempotency-Key: <run_id/task_id/attempt>`` plus the declared ones (which win). The
timeout is ``min(timeout, call.timeout)`` and bounds the whole exchange. Redirects are
not followed (a redirected POST would silently become a GET). Cancelling the attempt
shuts the connection down, so the worker thread stops too. Header values are never
logged or shown in errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.client
import json
import logging
import re
import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from devcrew_core.errors import TaskFailedError
from devcrew_core.runners import Runner, TaskCall
from devcrew_core.runners.placeholders import (
    check_declaration,
    option_error,
    positive_number,
    shown,
)
from devcrew_core.version import __version__

log = logging.getLogger("devcrew.runners.http")

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_SNIPPET_CHARS = 500
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Statuses a retry may fix: server errors, request timeout, too early, too many requests.
_RETRYABLE_4XX = frozenset({408, 425, 429})


def http_runner(spec: Mapping[str, Any]) -> Runner:
    """The factory of the ``http`` runner kind (see the module docstring)."""
    checked = check_declaration(
        spec, "http", required=("url",), optional=("headers", "timeout", "max_response_bytes")
    )
    url = checked["url"]
    if not isinstance(url, str):
        raise option_error("url", "must be an http:// or https:// URL", url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise option_error("url", f"must be a valid http:// or https:// URL ({exc})",
                           display_url(url)) from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise option_error("url", "must be an http:// or https:// URL with a host",
                           display_url(url))
    if "@" in parts.netloc:
        raise option_error("url", "must not contain credentials (user:password@); send "
                           "them in a header such as Authorization", display_url(url))
    if any(ch in url for ch in "\r\n\t\0 "):
        raise option_error("url", "must not contain whitespace or control characters",
                           display_url(url))

    headers = checked.get("headers", {})
    if headers is None:
        headers = {}
    if not isinstance(headers, Mapping):
        raise option_error("headers", "must be a mapping of header names to strings",
                           headers, hide=True)
    clean: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or _HEADER_NAME.fullmatch(name) is None:
            raise option_error("headers", "header names must be HTTP tokens", name)
        if not isinstance(value, str) or any(ch in value for ch in "\r\n\0"):
            raise option_error(f"headers[{name!r}]", "must be a string without CR, LF or "
                               "NUL", value, hide=True)
        clean[name] = value

    timeout = positive_number("timeout", checked.get("timeout", DEFAULT_TIMEOUT))
    limit = checked.get("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise option_error("max_response_bytes", "must be an integer >= 1", limit)
    return HttpRunner(url, clean, timeout, limit)


def display_url(url: str) -> str:
    """``url`` without credentials, query or fragment (which may hold secrets)."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        suffix = "?..." if parts.query else ""
        return f"{parts.scheme}://{host}{parts.path}{suffix}"
    except ValueError:
        return "<unparseable URL>"


class HttpRunner:
    """POSTs each attempt's call to one URL."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float,
                 max_response_bytes: int) -> None:
        self.url = url
        self._headers = headers
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes

    def __repr__(self) -> str:
        # Never the headers: they often carry credentials.
        return f"HttpRunner({display_url(self.url)!r})"

    async def __call__(self, call: TaskCall) -> dict[str, Any]:
        """POST the call and return the JSON object answered (see the module docstring)."""
        timeout = self.timeout if call.timeout is None else min(self.timeout, call.timeout)
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"devcrew/{__version__}",
            "Idempotency-Key": call.idempotency_key,
        }
        lowered = {name.lower(): name for name in headers}
        for name, value in self._headers.items():
            headers.pop(lowered.get(name.lower(), name), None)
            headers[name] = value
        body = json.dumps(call.as_json()).encode("utf-8")
        where = display_url(self.url)
        log.debug("task %s attempt %s: POST %s", call.task_id, call.attempt, where)

        connections = _Connections()
        exchange = functools.partial(_post, self.url, body, headers, timeout,
                                     self.max_response_bytes, connections)
        try:
            status, data = await asyncio.wait_for(asyncio.to_thread(exchange), timeout)
        except asyncio.TimeoutError:
            raise TaskFailedError(f"POST {where} timed out after {timeout:g}s") from None
        finally:
            # On cancel or timeout the worker thread is still blocked on the socket.
            connections.abort()
        return _output(where, status, data)


class _Connections:
    """The sockets of one exchange, so another thread can abort it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._aborted = False

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            if not self._aborted:
                self._sockets.append(sock)
                return
        _shutdown(sock)
        raise ConnectionAbortedError("the attempt was cancelled")

    def check(self) -> None:
        with self._lock:
            if self._aborted:
                raise ConnectionAbortedError("the attempt was cancelled")

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    # shutdown() wakes a thread blocked in recv() on the socket; close() would not.
    # The plain-socket method is used on purpose, also for TLS sockets.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Tracked:
    """Mixin for an ``http.client`` connection whose socket is registered on connect,
    so a cancelled attempt can shut it down."""

    sock: Any

    def __init__(self, *args: Any, connections: _Connections, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections = connections

    def connect(self) -> None:
        self._connections.check()
        super().connect()  # type: ignore[misc]
        self._connections.attach(self.sock)


class _TrackedHTTPConnection(_Tracked, http.client.HTTPConnection):
    pass


class _TrackedHTTPSConnection(_Tracked, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, connections: _Connections) -> None:
        super().__init__()
        self._connections = connections

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        factory = functools.partial(_TrackedHTTPConnection, connections=self._connections)
        return self.do_open(factory, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, connections: _Connections) -> None:
        self._ssl_context = _ssl_context()
        super().__init__(context=self._ssl_context)
        self._connections = connections

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        factory = functools.partial(_TrackedHTTPSConnection, connections=self._connections)
        return self.do_open(factory, req, context=self._ssl_context)


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """One verifying TLS context, shared (loading the CA store is not free)."""
    return ssl.create_default_context()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float, limit: int,
          connections: _Connections) -> tuple[int, bytes]:
    """The blocking exchange (runs in a worker thread): ``(status, body)``."""
    where = display_url(url)
    # The scheme was checked when the runner was declared: http or https only.
    request = urllib.request.Request(  # noqa: S310
        url, data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(
        _HTTPHandler(connections), _HTTPSHandler(connections), _NoRedirects()
    )
    try:
        try:
            with opener.open(request, timeout=timeout) as response:
                return response.status, _read(response, limit, where)
        except urllib.error.HTTPError as exc:
            with exc:
                status = exc.code
                location = exc.headers.get("Location") if 300 <= status < 400 else None
                data = _read(exc, limit, where)
            if location:
                data = f"redirect to {display_url(location)} (not followed)".encode()
            return status, data
    except TaskFailedError:
        raise
    except urllib.error.URLError as exc:
        reason: Any = exc.reason
        if isinstance(reason, ConnectionRefusedError):
            raise TaskFailedError(f"POST {where}: connection refused") from exc
        if isinstance(reason, TimeoutError):
            raise TaskFailedError(f"POST {where} timed out after {timeout:g}s") from exc
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise TaskFailedError(f"POST {where}: TLS certificate not trusted: "
                                  f"{reason.verify_message}", retryable=False) from exc
        raise TaskFailedError(f"POST {where} failed: {reason}") from exc
    except TimeoutError as exc:
        raise TaskFailedError(f"POST {where} timed out after {timeout:g}s") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise TaskFailedError(f"POST {where} failed: {type(exc).__name__}: {exc}") from exc


def _read(response: Any, limit: int, where: str) -> bytes:
    reader: Callable[[int], bytes] = response.read
    data = reader(limit + 1)
    if len(data) > limit:
        raise TaskFailedError(f"POST {where}: the response is larger than "
                              f"max_response_bytes ({limit})", retryable=False)
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _output(where: str, status: int, data: bytes) -> dict[str, Any]:
    """The attempt's output for a response, or the :class:`TaskFailedError` it means."""
    snippet = data[:_SNIPPET_CHARS].decode("utf-8", errors="replace")
    if not 200 <= status < 300:
        raise TaskFailedError(
            f"POST {where} answered HTTP {status}: {snippet}",
            retryable=status >= 500 or status in _RETRYABLE_4XX,
        )
    if not data.strip():
        return {}  # e.g. 204 No Content
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except ValueError as exc:
        raise TaskFailedError(f"POST {where} answered HTTP {status} with a body that is "
                              f"not JSON ({exc}): {shown(snippet)}", retryable=False) from exc
    if not isinstance(value, dict):
        raise TaskFailedError(f"POST {where} answered HTTP {status} with JSON that is not an "
                              f"object: {shown(snippet)}", retryable=False)
    return value
