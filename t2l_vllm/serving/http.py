"""HTTP pieces the vLLM plugin and the cluster front door share; nothing here imports vLLM.

- `ADAPTER_ROUTES`: the generation routes that take `task_description` or a `t2l-` model.
- `error_body`: vLLM's OpenAI error JSON; `retry_after` for 429s.
- `ApiKeyMiddleware`: with API keys set, every route but the public ones needs one.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from http import HTTPStatus

# Routes that run generation with the body's `model`: served through a held adapter.
ADAPTER_ROUTES = frozenset({
    "/v1/chat/completions", "/v1/completions", "/v1/chat/completions/batch",
    "/v1/responses", "/v1/messages", "/invocations",
})


# ---- OpenAI-style errors ---------------------------------------------------------

_ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    409: "ConflictError",
    413: "RequestTooLargeError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


def error_body(status: int, message: str, param: str | None = None) -> bytes:
    """vLLM's error JSON: {"error": {"message", "type", "param", "code"}}."""
    err = {"message": message, "type": _ERROR_TYPES.get(status, HTTPStatus(status).phrase), "param": param, "code": status}
    return json.dumps({"error": err}).encode()


def retry_after(seconds: float) -> str:
    """Retry-After takes whole seconds; never 0, which would invite an immediate retry storm."""
    return str(max(1, math.ceil(seconds)))


async def send_json(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = ()) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers,
        ],
    })
    await send({"type": "http.response.body", "body": body})


def route_path(scope) -> str:
    """The path routes are matched on: without the --root-path prefix, as Starlette does."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


class ApiKeyMiddleware:
    """Pure ASGI: with API keys set, only `public_paths` (and CORS preflights) answer without one.

    The key goes as `Authorization: Bearer KEY`, as for vLLM's own check; keys
    are compared as SHA-256 digests in constant time.
    """

    def __init__(self, app, tokens: list[str], public_paths: tuple[str, ...]):
        self.app = app
        self.digests = [hashlib.sha256(t.encode()).digest() for t in tokens]
        self.public = frozenset(public_paths)

    def _authorised(self, scope) -> bool:
        headers = dict(scope.get("headers") or [])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer":
            return False
        digest = hashlib.sha256(token.encode("latin-1")).digest()
        ok = False
        for d in self.digests:
            ok |= secrets.compare_digest(digest, d)
        return ok

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or scope.get("method") == "OPTIONS":
            return await self.app(scope, receive, send)
        if route_path(scope).rstrip("/") in self.public or self._authorised(scope):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        return await send_json(send, 401, error_body(401, "missing or invalid API key (Authorization: Bearer KEY)"))
