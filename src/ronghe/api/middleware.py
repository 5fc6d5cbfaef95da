"""ASGI middleware: request ids and access logs, metrics, body checks (size, media type,
forgiving JSON, text that can be stored).

Written as plain ASGI (not BaseHTTPMiddleware) so streaming responses pass straight through
and a client disconnect reaches the endpoint.
"""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import parse_qsl

import anyio
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ronghe import text
from ronghe.api import lenient
from ronghe.api.envelopes import error_body, family_of
from ronghe.errors import PayloadTooLarge

log = structlog.get_logger("ronghe.access")
# Scope key: the media type of a body that is not JSON (see BodyMiddleware).
NOT_JSON = "ronghe.not_json"


class HttpMetrics:
    """Per-app registry, so several apps in one process (tests) never collide."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("ronghe_http_requests_total", "HTTP requests",
                                ["method", "route", "status"], registry=registry)
        self.latency = Histogram(
            "ronghe_http_request_duration_seconds", "Time to the end of the response",
            ["method", "route"], registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )


class RequestContextMiddleware:
    """Request id (``X-Request-ID`` in or a new one), access log line, metrics."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")[:64]
        request_id = given if given.isprintable() and given else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        start = time.perf_counter()
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message.setdefault("headers", []).append(
                    (b"x-request-id", request_id.encode("latin-1"))
                )
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            # Answered here rather than by an app exception handler: Starlette re-raises
            # after its handler runs, so the server logged every error a second time.
            if started:
                raise  # too late for an envelope; the server logs it (once) and hangs up
            log.exception("unhandled error", method=scope["method"], path=scope["path"])
            await _send_error(scope, send_wrapper, 500,
                              "internal error; see the server log for details")
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            # The route template, not the raw path, keeps label cardinality bounded.
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], label, str(status)).inc()
            self.metrics.latency.labels(scope["method"], label).observe(elapsed)
            if label not in ("/healthz", "/metrics"):
                log.info("request", method=scope["method"], path=scope["path"],
                         status=status, ms=round(elapsed * 1000, 1))
            structlog.contextvars.unbind_contextvars("request_id")


class BodyMiddleware:
    """Checks what a request carries before any endpoint sees it.

    - Bodies are capped at ``max_bytes``.
    - JSON bodies: the spec's curl examples carry a trailing comma before ``}``; rather than
      reject what a user pasted from the vendor's page, such commas are dropped
      (``ronghe.api.lenient``, bounded in size and depth, off the event loop) and the
      endpoint sees strict JSON.  A body sent as ``text/plain`` (a browser's ``fetch`` with
      a string body) or as a form that holds JSON (``curl -d`` without ``-H``) is JSON.
    - A body of another media type (a form, multipart) is marked in the scope
      (``NOT_JSON``): the routes that take JSON refuse it with a 415 (``deps.json_bodies_only``,
      which runs once the route is known).
    - No string that cannot be stored gets in (``ronghe.text``): a lone surrogate or a NUL
      in a JSON body, a NUL in the path or the query is a 400 naming the field.  Multipart
      uploads store no text but caption files, checked where they are read
      (``ronghe.uploads.service.caption_text``).
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        bad = _bad_path_or_query(scope)
        if bad is not None:
            await _send_error(scope, send, 400, bad[1], bad[0])
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._too_large(scope, send)
            return
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        json_type = ctype == b"application/json" or ctype.endswith(b"+json")
        if json_type or ctype in (b"", b"text/plain", b"application/x-www-form-urlencoded"):
            body = await self._read_all(receive)
            if body is None:
                await self._too_large(scope, send)
                return
            if not json_type and (ctype != b"application/x-www-form-urlencoded"
                                  or body.lstrip()[:1] in (b"{", b"[")):
                scope = _as_json(scope)
                json_type = True
            if json_type:
                try:
                    body = await _checked_json(body)
                except lenient.BadJson as exc:
                    await _send_error(scope, send, 400, str(exc))
                    return
                except InvalidText as exc:
                    await _send_error(scope, send, 400, exc.msg, exc.field)
                    return
            else:
                scope = _not_json(scope, ctype)
            await self.app(scope, _replay(body, receive), send)
            return
        await self.app(_not_json(scope, ctype), self._counting(receive, scope, send), send)

    async def _read_all(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _counting(self, receive: Receive, scope: Scope, send: Send) -> Receive:
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        return wrapped

    async def _too_large(self, scope: Scope, send: Send) -> None:
        await _send_error(scope, send, 413, f"request body is larger than {self.max_bytes} bytes")


def _not_json(scope: Scope, ctype: bytes) -> Scope:
    """Marks a body that is not JSON, for ``deps.json_bodies_only`` (which knows the route)."""
    scope = dict(scope)
    scope[NOT_JSON] = ctype.decode("latin-1")[:100]
    return scope


def _as_json(scope: Scope) -> Scope:
    scope = dict(scope)
    scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
    scope["headers"].append((b"content-type", b"application/json"))
    return scope


def _bad_path_or_query(scope: Scope) -> tuple[str, str] | None:
    """``(field, message)`` for a NUL in the path or a query parameter (percent-encoded as
    ``%00``; Starlette decodes anything else that is not UTF-8 to U+FFFD)."""
    if "\x00" in scope.get("path", ""):
        return "path", "path: the URL contains a NUL character (%00); send valid text"
    query = scope.get("query_string", b"")
    if b"%00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                shown = text.scrub(name.replace("\x00", ""))[:64]
                field = shown or "query"
                return field, f"{field}: contains a NUL character (%00); send valid text"
    return None


async def _send_error(scope: Scope, send: Send, status: int, msg: str,
                      field: str | None = None) -> None:
    body = json.dumps(error_body(family_of(scope["path"]), status, msg, field)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(PayloadTooLarge):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than {limit} bytes")


# Strict parsing of bodies up to this size runs inline: it takes well under a millisecond,
# less than the thread hop would cost.  Bigger bodies are parsed in a worker thread.
INLINE_PARSE_BYTES = 256 * 1024


class InvalidText(ValueError):
    def __init__(self, field: str, what: str) -> None:
        super().__init__(field)
        self.field = field
        self.msg = f"{text.scrub(field)}: contains {what}; send valid Unicode text"


async def _checked_json(body: bytes) -> bytes:
    """The body as strict JSON, repaired when the vendor's examples need it, and with no
    string that cannot be stored.  Nothing slow runs on the event loop: small strict bodies
    parse inline (well under a millisecond), the rest in a worker thread.  Raises
    lenient.BadJson or InvalidText with the client's error."""
    if not body.strip():
        return body
    if len(body) <= INLINE_PARSE_BYTES and lenient.is_strict(body):
        if text.json_may_be_invalid(body):
            _check_text(body)
        return body
    return await anyio.to_thread.run_sync(_repaired_and_checked, body)


def _repaired_and_checked(body: bytes) -> bytes:
    body = lenient.repair(body)
    if text.json_may_be_invalid(body):
        _check_text(body)
    return body


def _check_text(body: bytes) -> None:
    found = text.first_invalid(json.loads(body))
    if found is not None:
        raise InvalidText(*found)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        # After the body, pass through so endpoints can still see the client disconnect.
        return await receive()

    return replay
