"""Request guards, ASGI middlewares of the service: each answers in the service's one error shape."""

import asyncio
import hmac
import json
from http import HTTPStatus

HEALTH_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
RETRY_SOON = {"Retry-After": "1"}  # an overload passes within a second or so: try again then
OVERLOADED = "server overloaded, retry later"
CLOSE = {"Connection": "close"}  # the rest of a refused body is never read: drop the connection


def error_response(status: int, error: str, headers: dict[str, str] | None = None):
    """The service's one error shape, ``{"error": ...}``: a route returns it (BentoML renders a raised 4xx as a
    one-element array and replaces a 5xx's reason with a generic sentence), a middleware sends it (a Starlette
    response is an ASGI app)."""
    from starlette.responses import JSONResponse

    return JSONResponse({"error": error}, status_code=status, headers=headers)


class RequireToken:
    """ASGI middleware: the given paths need ``Authorization: Bearer <token>``, else 401 (compared in constant time)."""

    def __init__(self, app, token: str, paths: frozenset[str]) -> None:
        self.app, self.expected, self.paths = app, f"Bearer {token}".encode(), paths

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                return await error_response(401, "missing or wrong token", {"WWW-Authenticate": "Bearer"})(
                    scope, receive, send
                )
        await self.app(scope, receive, send)


class JSONOnly:
    """ASGI middleware: a POST whose body is declared as anything but JSON gets 415, not a framework 500.

    (BentoML answers 500 to ``multipart/form-data`` without a boundary; every route here takes JSON.)
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            declared = dict(scope["headers"]).get(b"content-type", b"application/json")
            if declared.split(b";")[0].strip().lower() != b"application/json":
                answer = error_response(415, "send the body as JSON (Content-Type: application/json)")
                return await answer(scope, receive, send)
        await self.app(scope, receive, send)


class JSONErrors:
    """ASGI middleware: an error answered in another shape by the framework (Starlette's plain-text 404 for an
    unknown path, 405 for a wrong method) is sent as ``{"error": ...}``, the service's one error shape; its
    other headers (``Allow``) are kept."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        held: dict | None = None  # the start of a response being replaced

        async def send_json_errors(message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] >= 400:
                headers = message.get("headers", [])
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if not content_type.startswith(b"application/json"):
                    held = message
                    return
            if held is None:
                return await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                status = held["status"]
                body = json.dumps({"error": f"{HTTPStatus(status).phrase.lower()}: {scope['method']} {scope['path']}"})
                kept = [(k, v) for k, v in held["headers"] if k.lower() not in (b"content-type", b"content-length")]
                headers = [*kept, (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body.encode()})

        await self.app(scope, receive, send_json_errors)


class LoadShedding:
    """ASGI middleware: past ``max_concurrency`` requests in flight, answer 503 with Retry-After at once.

    Shedding early keeps latency bounded for the requests that are admitted, and the server recovers
    as soon as load drops. Health and metrics paths are never shed, so probes keep working.
    (BentoML's own ``traffic.max_concurrency`` answers 429, which tells clients they did wrong.)
    """

    def __init__(self, app, max_concurrency: int) -> None:
        self.app = app
        self.max_concurrency = max_concurrency
        self.in_flight = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in HEALTH_PATHS:
            return await self.app(scope, receive, send)
        if self.in_flight >= self.max_concurrency:
            return await error_response(503, OVERLOADED, RETRY_SOON)(scope, receive, send)
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class BodyLimits:
    """ASGI middleware: a request body must fit in ``max_bytes`` and arrive whole within ``timeout_s``.

    A declared Content-Length over the limit is answered 413 before a byte of the body is read; a body
    that grows past it while streaming, 413 as soon as it does; one still incomplete after ``timeout_s``,
    408. The inner app sees the request only once its body is whole, so clients that send slowly hold no
    place in the in-flight limit (LoadShedding, inside this) and cannot starve the others.
    """

    def __init__(self, app, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            return await self.too_large(scope, receive, send)
        chunks, size = [], 0
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunks.append(message.get("body", b""))
                    size += len(chunks[-1])
                    if size > self.max_bytes:
                        return await self.too_large(scope, receive, send)
                    if not message.get("more_body"):
                        break
        except TimeoutError:
            late = error_response(408, f"the body did not arrive within {self.timeout_s:g} s", CLOSE)
            return await late(scope, receive, send)
        whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        async def replay():
            nonlocal whole
            if whole is None:
                return await receive()  # a disconnect, for the app to notice
            message, whole = whole, None
            return message

        await self.app(scope, replay, send)

    async def too_large(self, scope, receive, send) -> None:
        await error_response(413, f"the body is over {self.max_bytes:,} bytes", CLOSE)(scope, receive, send)
