"""Everything that touches vLLM internals (vLLM 0.32 API server), in one module.

Two entry points (declared in plugin_names.py), both named in VLLM_PLUGINS by `t2l-vllm serve`:

- `vllm.general_plugins` -> `register_general_plugin()`: runs in every vLLM
  process; installs our CPU LoRA ops (cpu_lora/) and a LoRA resolver, so a
  plain vLLM server with VLLM_ALLOW_RUNTIME_LORA_UPDATING=1 serves stored
  `t2l-<hash>` ids. Under `t2l-vllm serve` the resolver declines: the adapter
  service owns t2l ids, and a registration it does not count could be evicted
  under a live request.
- `vllm.endpoint_plugins` -> `T2LEndpointPlugin`: two ASGI middlewares, the
  `/v1/t2l/adapters` routes and the playground page (playground.py).
  - `ApiKeyMiddleware`: with --api-key (or VLLM_API_KEY), every route but the
    configured public ones (/health, /ping, /metrics) needs the key. vLLM's own
    check guards only /v1, /v2, /inference and /cohere, leaving e.g.
    /invocations and /adapters open.
  - `TaskDescriptionMiddleware`: on the generation routes (ADAPTER_ROUTES) it
    reads `task_description` or a `t2l-` model, makes the adapter resident,
    holds a reference until the response has been sent, and points `model` at
    it. Every other route refuses t2l ids and `task_description` with a 400.
    Before any of that, every POST body but a form upload must be a
    well-formed JSON object (`decode_json_body`: UTF-8, at most
    MAX_JSON_DEPTH levels, finite numbers, 64-bit integers), or it gets a 400
    in OpenAI error JSON before vLLM parses it.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import json
import logging
import math
import re
from argparse import Namespace
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from vllm.lora.resolver import LoRAResolver

from ..adapter import ADAPTER_ID_RE, ADAPTER_PREFIX, normalize_description
from .config import ServeConfig
from .http import ADAPTER_ROUTES, ApiKeyMiddleware, error_body, retry_after, route_path, send_json
from .instructions import add_instructions
from . import blends
from .plugin_names import ENDPOINT_PLUGIN
from .playground import PLAYGROUND_PATHS, playground_router
from .service import (
    AdapterEngine,
    AdapterInUse,
    AdapterNotFound,
    AdapterPinned,
    AdapterService,
    GenerationFailed,
    TooManyGenerations,
)

# A child of vLLM's logger, so messages go where vLLM's own go.
logger = logging.getLogger("vllm.t2l_vllm")

RESOLVER_NAME = "t2l_vllm"
# vLLM's routes that load or unload adapters by name (mounted with
# VLLM_ALLOW_RUNTIME_LORA_UPDATING): (method, path prefix) -> where the name is.
LORA_ADMIN_ROUTES = {
    ("POST", "/v1/load_lora_adapter"): "lora_name",
    ("POST", "/v1/unload_lora_adapter"): "lora_name",
    ("POST", "/adapters"): "name",
    ("DELETE", "/adapters/"): "path",
}
ADMIN_PREFIX = "/v1/t2l/"
ADAPTER_HEADER = b"x-t2l-adapter-id"
SERVED_BY_HEADER = b"x-t2l-served-by"  # adapter | prompt | both
CONFIDENCE_HEADER = b"x-t2l-confidence"
BLEND_HEADER = b"x-t2l-blend"  # 1: a blended adapter served the request
REUSE_HEADER = b"x-t2l-reuse"  # exact | semantic: the adapter was made for another description
REUSE_SIMILARITY_HEADER = b"x-t2l-reuse-similarity"  # cosine of the two descriptions (1.0 for exact)
STATE_KEY = "t2l_service"
MAX_BODY_BYTES = 64 * 1024 * 1024


# ---- the engine side -------------------------------------------------------------


class VllmEngine(AdapterEngine):
    """Registers adapters with vLLM's OpenAI front end and its engine."""

    def __init__(self, serving_models: Any, engine_client: Any):
        self.models = serving_models
        self.engine_client = engine_client

    async def register(self, adapter_id: str, path: Path, trusted: bool = False) -> None:
        from vllm.entrypoints.serve.engine.protocol import ErrorResponse
        from vllm.entrypoints.serve.lora.protocol import LoadLoRAAdapterRequest
        from vllm.lora.request import LoRARequest

        if adapter_id in self.models.lora_requests:
            return
        if trusted:
            # What load_lora_adapter does, less its engine.add_lora: that call waits for the
            # engine loop's next step boundary to preload the weights (register p50 80-95 ms
            # at N = 32 under load), while the worker loads a LoRARequest's folder anyway when
            # the first request using it is scheduled. Measured: cold - warm first-request TTFT
            # p50 252 -> 191 ms (process) and 223 -> 156 ms (thread), benchmarks/results/cold_path/.
            async with self.models.lora_resolver_lock[adapter_id]:
                if adapter_id not in self.models.lora_requests:
                    self.models.lora_requests[adapter_id] = LoRARequest(
                        lora_name=adapter_id, lora_int_id=self.models.lora_id_counter.inc(1),
                        lora_path=str(Path(path).resolve()))
            return
        result = await self.models.load_lora_adapter(
            LoadLoRAAdapterRequest(lora_name=adapter_id, lora_path=str(Path(path).resolve()))
        )
        # vLLM checks "already loaded" under its per-name lock, after ours: a
        # registration that won the race in between is a success, not an error.
        if isinstance(result, ErrorResponse) and adapter_id not in self.models.lora_requests:
            raise RuntimeError(result.error.message)

    async def unregister(self, adapter_id: str) -> None:
        from vllm.entrypoints.serve.lora.protocol import UnloadLoRAAdapterRequest

        request = self.models.lora_requests.get(adapter_id)
        if request is None:
            return
        await self.models.unload_lora_adapter(UnloadLoRAAdapterRequest(lora_name=adapter_id))
        # unload_lora_adapter only forgets the name (vLLM issue 54839); free the weights too.
        await self.engine_client.remove_lora(request.lora_int_id)


# ---- the request middleware ------------------------------------------------------


class TaskDescriptionMiddleware:
    """Pure ASGI: serves generation routes through held adapters; keeps t2l ids off every other route."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "DELETE"):
            return await self.app(scope, receive, send)
        service: AdapterService | None = getattr(scope["app"].state, STATE_KEY, None)
        path = route_path(scope)
        if service is None or path.startswith(ADMIN_PREFIX):
            return await self.app(scope, receive, send)
        if scope["method"] == "DELETE":
            if path.startswith("/adapters/") and path[len("/adapters/"):].startswith(ADAPTER_PREFIX):
                return await send_json(send, 400, _t2l_managed(path[len("/adapters/"):]))
            return await self.app(scope, receive, send)
        if _is_multipart(scope):
            return await self.app(scope, receive, send)  # form uploads (audio): no JSON model field
        body, more = await _read_body(receive)
        if more:
            # Too big to inspect, and passing it on could drop a task_description silently.
            return await send_json(send, 413, error_body(413, f"request body over {MAX_BODY_BYTES} bytes"))
        if not body:
            # Routes that take no body (/ping, .../cancel); vLLM answers a missing one on the others.
            return await self.app(scope, _replay(body, receive), send)

        try:
            # Every JSON route of vLLM takes an object; anything that is not a
            # well-formed one stops here with a 400, before vLLM parses it again.
            payload = decode_json_body(body)
            if path in ADAPTER_ROUTES:
                served = await self._resolve(scope, path, service, payload)
            else:
                _refuse_t2l(path, payload)
                served = None
        except _HTTPError as e:
            return await send_json(send, e.status, error_body(e.status, e.message, e.param), e.headers)
        if served is None:
            return await self.app(scope, _replay(body, receive), send)

        try:
            new_body = json.dumps(payload).encode()
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(new_body)).encode()))
            scope = dict(scope, headers=headers)

            async def send_with_headers(message):
                if message["type"] == "http.response.start":
                    message = dict(message, headers=[*message.get("headers", []), *served.headers])
                await send(message)

            # Returns once the whole response (a stream too) has been sent.
            await self.app(scope, _replay(new_body, receive), send_with_headers)
        finally:
            if served.adapter_id is not None:
                service.release(served.adapter_id)

    async def _resolve(self, scope, path: str, service: AdapterService, payload: dict) -> "_Served | None":
        """How a generation request is served (its adapter acquired), or None to pass it through untouched."""
        model = payload.get("model")
        uses_t2l = "task_description" in payload or (isinstance(model, str) and model.startswith(ADAPTER_PREFIX))
        if uses_t2l and payload.get("background"):
            # A background response outlives this request, so no reference could cover it.
            raise _HTTPError(400, "background responses cannot use t2l adapters; drop `background`", "background")
        if "task_description" in payload:
            return await self._serve_description(scope, path, service, payload)
        # By id: the adapter exists (or is regenerated from its own metadata), so no rate limit applies.
        if isinstance(model, str) and model.startswith(ADAPTER_PREFIX):
            if not ADAPTER_ID_RE.match(model):
                raise _HTTPError(404, f"The model `{model}` does not exist: not a valid t2l adapter id.", "model")
            try:
                aid = await service.acquire_id(model)
            except AdapterNotFound:
                raise _HTTPError(404, f"The model `{model}` does not exist (no such t2l adapter).", "model") from None
            except GenerationFailed as e:
                raise _HTTPError(500, str(e), "model") from None
            except TooManyGenerations as e:  # a corrupt copy being regenerated with the queue full
                raise _too_many(e, "model") from None
            return _Served(aid, [(ADAPTER_HEADER, aid.encode())])
        return None

    async def _serve_description(self, scope, path: str, service: AdapterService, payload: dict) -> "_Served":
        """`task_description`: through its adapter, the prompt, or both, as the confidence policy says."""
        description = payload.pop("task_description")
        if isinstance(description, list):
            return await self._serve_blend(scope, service, payload, description)
        model = payload.get("model")
        models = scope["app"].state.openai_serving_models
        try:
            wanted = service.adapter_id_for(description)
            route, confidence = await service.route_for(description)
        except ValueError as e:
            raise _HTTPError(400, str(e), "task_description") from None
        except GenerationFailed as e:
            raise _HTTPError(500, str(e), "task_description") from None
        except TooManyGenerations as e:
            raise _too_many(e) from None
        is_base = isinstance(model, str) and models.is_base_model(model)
        if model and not is_base and model != wanted:
            raise _HTTPError(
                400,
                f"task_description selects its own adapter; drop `model` ({model!r}) or set it to the base model",
                "model",
            )
        text = normalize_description(description, service.config.max_description_chars)
        if route != "adapter" and not add_instructions(path, payload, text):
            route = "adapter"  # e.g. token-id prompts: no text to put the description in
        aid, reuse = None, None
        if route != "prompt":
            try:
                acquired = await service.acquire_served(description, client_key(scope))
            except GenerationFailed as e:
                raise _HTTPError(500, str(e), "task_description") from None
            except TooManyGenerations as e:
                raise _too_many(e) from None
            aid, reuse = acquired.adapter_id, acquired.reuse
            payload["model"] = aid
            confidence = service.confidence(aid) if confidence is None else confidence
        elif not is_base:
            payload["model"] = models.base_model_paths[0].name  # the response names the model that served it
        service.metrics.served.labels(route).inc()
        headers = [(SERVED_BY_HEADER, route.encode())]
        if confidence is not None:
            service.metrics.confidence.observe(confidence)
            headers.append((CONFIDENCE_HEADER, f"{confidence:.4f}".encode()))
        if aid is not None:
            headers.append((ADAPTER_HEADER, aid.encode()))
        if reuse is not None:
            headers += [(REUSE_HEADER, reuse.kind.encode()), (REUSE_SIMILARITY_HEADER, f"{reuse.similarity:.4f}".encode())]
        return _Served(aid, headers)


    async def _serve_blend(self, scope, service: AdapterService, payload: dict, members: list) -> "_Served":
        """A list of {"text", "weight"}: through the blended adapter (blends.py); the confidence policy does not apply."""
        model = payload.get("model")
        models = scope["app"].state.openai_serving_models
        try:
            wanted = blends.blend_id_for(service, members)
        except ValueError as e:
            raise _HTTPError(400, str(e), "task_description") from None
        if model and not (isinstance(model, str) and models.is_base_model(model)) and model != wanted:
            raise _HTTPError(
                400, f"task_description selects its own adapter; drop `model` ({model!r}) or set it to the base model",
                "model",
            )
        try:
            aid = (await blends.acquire_blend(service, members, client_key(scope))).adapter_id
        except ValueError as e:
            raise _HTTPError(400, str(e), "task_description") from None
        except GenerationFailed as e:
            raise _HTTPError(500, str(e), "task_description") from None
        except TooManyGenerations as e:
            raise _too_many(e) from None
        payload["model"] = aid
        service.metrics.served.labels("adapter").inc()
        return _Served(aid, [(SERVED_BY_HEADER, b"adapter"), (ADAPTER_HEADER, aid.encode()), (BLEND_HEADER, b"1")])


@dataclass(frozen=True)
class _Served:
    """The adapter a request holds (None on the prompt path) and the headers its response gets."""

    adapter_id: str | None
    headers: list[tuple[bytes, bytes]]


def _refuse_t2l(path: str, payload: dict) -> None:
    """400 for t2l ids and task_description on a route that is not served through a held adapter."""
    for (method, prefix), field in LORA_ADMIN_ROUTES.items():
        if method == "POST" and path == prefix:
            name = payload.get(field)
            if isinstance(name, str) and name.startswith(ADAPTER_PREFIX):
                raise _HTTPError(400, json.loads(_t2l_managed(name))["error"]["message"], field)
    model = payload.get("model")
    if "task_description" in payload or (isinstance(model, str) and model.startswith(ADAPTER_PREFIX)):
        routes = ", ".join(sorted(ADAPTER_ROUTES))
        raise _HTTPError(
            400, f"{path} does not serve t2l adapters; task_description and t2l- models work on {routes}",
            "task_description" if "task_description" in payload else "model",
        )


def _t2l_managed(name: str) -> bytes:
    return error_body(
        400, f"{name!r}: t2l- adapters are managed by t2l-vllm; use /v1/t2l/adapters to create or delete them",
        "lora_name",
    )


def _is_multipart(scope) -> bool:
    for k, v in scope.get("headers") or []:
        if k.lower() == b"content-type":
            return v.lower().startswith(b"multipart/")
    return False


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None,
                 headers: list[tuple[bytes, bytes]] = ()):
        super().__init__(message)
        self.status, self.message, self.param, self.headers = status, message, param, list(headers)


# ---- JSON request bodies -------------------------------------------------------------

# How deep arrays and objects may nest in a request body. json.loads recurses once
# per level, and so do the pydantic models, chat templates and grammar compilers
# behind it: 5,000 levels of `[` ended in a RecursionError (a 500, which also
# closes the connection) at a depth that depends on what else is on the stack.
# Checked before parsing, without recursion. Real requests, tool and
# response_format JSON schemas included, stay far below 100 levels.
MAX_JSON_DEPTH = 100
# One JSON string token, escapes included: brackets inside strings do not nest.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Integers must fit the msgpack that carries requests to the engine core (int64
# or uint64): a bigger one (top_k = 2**64 on /v1/responses) made its encoder
# raise OverflowError, a 500. Out of range takes 19 digits or more (-2**63 - 1),
# so a body without such a run needs no check, and the parse keeps its fast path.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_JSON_TYPE_NAMES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


def json_nesting_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when arrays/objects in `body` nest deeper than `limit`: a loop over the brackets, no recursion.

    Exact for valid JSON; on invalid JSON it may count wrong, and the parse that follows refuses it.
    """
    if body.count(b"[") + body.count(b"{") <= limit:  # most bodies: too few brackets to nest that deep
        return False
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _int64(text: str) -> int:
    value = int(text) if len(text) <= 21 else None  # longer: out of range, no need to convert
    if value is None or not _INT_MIN <= value <= _INT_MAX:
        shown = text if len(text) <= 24 else text[:24] + "..."
        raise _HTTPError(400, f"integer {shown} in the request body does not fit in 64 bits")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise _HTTPError(400, f"number {text[:40]} in the request body is out of range")
    return value


def _refuse_constant(name: str):
    raise _HTTPError(400, f"{name} is not a JSON value; send finite numbers only")


def decode_json_body(body: bytes) -> dict:
    """The JSON object a request body holds, or _HTTPError(400) saying what is wrong with it.

    Used by the middleware (every POST route but form uploads) and the admin
    create route. Stricter than the json.loads(bytes) vLLM runs on the body we
    pass on, so both read a body the same way:
    - UTF-8 only (RFC 8259 section 8.1), a UTF-8 BOM ignored as json.loads does.
      UTF-16/32 are refused rather than guessed at: OpenAI clients send UTF-8,
      and the body goes on to vLLM unchanged.
    - at most MAX_JSON_DEPTH levels of nesting;
    - no NaN/Infinity (not JSON) and no number that overflows a float (1e999
      would reach sampling parameters as inf), no integer outside
      [-2**63, 2**64 - 1];
    - an object at the top: every JSON route of vLLM and ours takes one.
    """
    if b"\x00" in body:  # never valid in JSON text; the mark of UTF-16/32
        raise _HTTPError(400, "request body has NUL bytes: send JSON as UTF-8 (UTF-16/32 are not accepted)")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _HTTPError(400, f"request body is not UTF-8 (bad byte at offset {e.start}); send JSON as UTF-8") from None
    if not text.strip():
        raise _HTTPError(400, "request body is empty; expected a JSON object")
    if json_nesting_exceeds(body):
        raise _HTTPError(400, f"request body nests arrays/objects deeper than {MAX_JSON_DEPTH} levels")
    try:
        hooks = {"parse_int": _int64} if _LONG_DIGITS.search(body) else {}
        value = json.loads(text, parse_float=_finite_float, parse_constant=_refuse_constant, **hooks)
    except json.JSONDecodeError as e:
        raise _HTTPError(400, f"request body is not valid JSON: {e}") from None
    except RecursionError:  # not reachable under MAX_JSON_DEPTH; a 400 all the same
        raise _HTTPError(400, "request body nests arrays/objects too deeply") from None
    if not isinstance(value, dict):
        kind = "null" if value is None else _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
        raise _HTTPError(400, f"request body is {kind}; expected a JSON object")
    return value


def _too_many(e: TooManyGenerations, param: str = "task_description") -> _HTTPError:
    return _HTTPError(429, str(e), param, [(b"retry-after", retry_after(e.retry_after).encode())])


def client_key(scope) -> str:
    """Who --max-new-adapters-per-minute counts: a digest of the bearer token ("" without one).

    The token itself is never kept; with no --api-key every caller shares one budget.
    """
    for k, v in scope.get("headers") or []:
        if k.lower() == b"authorization":
            return hashlib.sha256(v).hexdigest()[:16]
    return ""


async def _read_body(receive, limit: int = MAX_BODY_BYTES) -> tuple[bytes, bool]:
    """Read the request body; `more` is True when it is longer than `limit`."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if not message.get("more_body", False):
            return b"".join(chunks), False
        if size > limit:
            return b"".join(chunks), True


def _replay(body: bytes, receive):
    """A `receive` that yields `body` first, then defers to the real one."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# ---- admin routes ----------------------------------------------------------------


async def _capped_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body of an admin request (the middleware skips those), refused with 413 past `limit`."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _HTTPError(413, f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _admin_router() -> APIRouter:
    router = APIRouter(prefix=ADMIN_PREFIX.rstrip("/"))

    def err(status: int, message: str, param: str | None = None) -> Response:
        return Response(error_body(status, message, param), status_code=status, media_type="application/json")

    def too_many(e: TooManyGenerations, param: str) -> Response:
        return Response(
            error_body(429, str(e), param), status_code=429, media_type="application/json",
            headers={"retry-after": retry_after(e.retry_after)},
        )

    def service_of(request: Request) -> AdapterService:
        return getattr(request.app.state, STATE_KEY)

    def bad_id(adapter_id: str) -> Response | None:
        if not ADAPTER_ID_RE.match(adapter_id):
            return err(404, f"no adapter {adapter_id!r}: ids are t2l- followed by 32 hex digits", "adapter_id")
        return None

    async def description_body(request: Request) -> tuple[dict | None, Response | None]:
        """(the JSON body, None), or (None, the error response) when it is unreadable or has no task_description."""
        try:
            payload = decode_json_body(await _capped_body(request))
        except _HTTPError as e:
            return None, err(e.status, e.message, e.param)
        if "task_description" not in payload:
            return None, err(400, "expected a JSON object with a task_description string", "task_description")
        return payload, None

    async def delete_response(service, adapter_id: str) -> Response:
        """DELETE of an adapter (generated or library): 404 unknown, 409 in use or pinned."""
        try:
            await service.delete(adapter_id)
        except AdapterNotFound:
            return err(404, f"no adapter {adapter_id}", "adapter_id")
        except (AdapterInUse, AdapterPinned) as e:
            return err(409, str(e), "adapter_id")
        return JSONResponse({"id": adapter_id, "object": "t2l.adapter", "deleted": True})

    @router.post("/adapters")
    async def create_adapter(request: Request):
        payload, error = await description_body(request)
        if error is not None:
            return error
        try:
            if isinstance(payload["task_description"], list):  # a blend (blends.py)
                return JSONResponse(await blends.create_blend(
                    service_of(request), payload["task_description"], client_key(request.scope)))
            return JSONResponse(await service_of(request).create(payload["task_description"], client_key(request.scope)))
        except ValueError as e:
            return err(400, str(e), "task_description")
        except GenerationFailed as e:
            return err(500, str(e), "task_description")
        except TooManyGenerations as e:
            return too_many(e, "task_description")

    @router.post("/reuse")
    async def preview_reuse(request: Request):
        """What --reuse would serve a task_description with: the match and the nearest adapters, nothing acquired."""
        payload, error = await description_body(request)
        if error is not None:
            return error
        try:
            return JSONResponse(await service_of(request).reuse_candidates(payload["task_description"]))
        except ValueError as e:
            return err(400, str(e), "task_description")
        except TooManyGenerations as e:
            return too_many(e, "task_description")

    @router.post("/library")
    async def register_library(request: Request):
        """Register a trained PEFT adapter with its task descriptions (library.py has the body and the checks)."""
        try:
            payload = decode_json_body(await _capped_body(request))
        except _HTTPError as e:
            return err(e.status, e.message, e.param)
        service = service_of(request)
        try:
            return JSONResponse(await service.register_library(
                payload, service.generator.hypernet.config.target, service.base_names))
        except ValueError as e:
            return err(400, str(e), "adapter_model")
        except TooManyGenerations as e:
            return too_many(e, "descriptions")

    @router.get("/library")
    async def list_library(request: Request):
        return JSONResponse({"object": "list", "data": service_of(request).library_list()})

    @router.delete("/library/{adapter_id}")
    async def delete_library(adapter_id: str, request: Request):
        if (bad := bad_id(adapter_id)) is not None:
            return bad
        service = service_of(request)
        if adapter_id not in service.library:
            return err(404, f"no library adapter {adapter_id}", "adapter_id")
        return await delete_response(service, adapter_id)

    @router.get("/adapters")
    async def list_adapters(request: Request):
        return JSONResponse({"object": "list", "data": service_of(request).list()})

    @router.get("/adapters/{adapter_id}")
    async def show_adapter(adapter_id: str, request: Request):
        if (bad := bad_id(adapter_id)) is not None:
            return bad
        try:
            return JSONResponse(await service_of(request).show(adapter_id))
        except AdapterNotFound:
            return err(404, f"no adapter {adapter_id}", "adapter_id")

    @router.get("/adapters/{adapter_id}/download")
    async def download_adapter(adapter_id: str, request: Request):
        if (bad := bad_id(adapter_id)) is not None:
            return bad
        try:
            data = await service_of(request).archive(adapter_id)
        except AdapterNotFound:
            return err(404, f"no adapter {adapter_id}", "adapter_id")
        return Response(
            data,
            media_type="application/gzip",
            headers={"content-disposition": f'attachment; filename="{adapter_id}.tar.gz"'},
        )

    @router.delete("/adapters/{adapter_id}")
    async def delete_adapter(adapter_id: str, request: Request):
        if (bad := bad_id(adapter_id)) is not None:
            return bad
        return await delete_response(service_of(request), adapter_id)

    @router.post("/adapters/{adapter_id}/pin")
    async def pin_adapter(adapter_id: str, request: Request):
        if (bad := bad_id(adapter_id)) is not None:
            return bad
        try:
            return JSONResponse(await service_of(request).pin(adapter_id))
        except AdapterNotFound:
            return err(404, f"no adapter {adapter_id}", "adapter_id")
        except AdapterPinned as e:
            return err(409, str(e), "adapter_id")
        except GenerationFailed as e:
            return err(500, str(e), "adapter_id")
        except TooManyGenerations as e:  # a corrupt copy being regenerated with the queue full
            return too_many(e, "adapter_id")

    @router.delete("/adapters/{adapter_id}/pin")
    async def unpin_adapter(adapter_id: str, request: Request):
        if (bad := bad_id(adapter_id)) is not None:
            return bad
        try:
            return JSONResponse(await service_of(request).unpin(adapter_id))
        except AdapterNotFound:
            return err(404, f"no adapter {adapter_id}", "adapter_id")

    return router


# ---- plugin entry points ---------------------------------------------------------


class T2LEndpointPlugin:
    """`vllm.endpoint_plugins` entry: middleware + admin routes + the adapter service."""

    name = ENDPOINT_PLUGIN
    required_tasks = ("generate",)

    def attach_router(self, app) -> None:
        import vllm.envs

        config = ServeConfig.from_env()
        public_paths = config.public_paths
        app.include_router(_admin_router())
        if config.playground:
            # Static files only: the page's own requests need the key like any other.
            app.include_router(playground_router())
            public_paths += PLAYGROUND_PATHS
        app.add_middleware(TaskDescriptionMiddleware)
        # Added last, so it runs first: no request reaches the adapter middleware without the key.
        args = getattr(app.state, "args", None)
        tokens = [k for k in (getattr(args, "api_key", None) or [vllm.envs.VLLM_API_KEY]) if k]
        if tokens:
            app.add_middleware(ApiKeyMiddleware, tokens=tokens, public_paths=public_paths)

    async def init_state(self, engine_client, state, args: Namespace) -> None:
        if engine_client is None:
            return
        count = getattr(args, "api_server_count", None)
        if count is not None and count > 1:
            # Each API-server process would run its own adapter service over one
            # engine core: clashing LoRA integer ids, per-process single flight
            # and disk LRUs deleting files a sibling serves.
            raise RuntimeError(
                f"t2l-vllm supports one API-server process per engine, got --api-server-count {count}; "
                "run several servers behind a load balancer instead"
            )
        service = await asyncio.get_running_loop().run_in_executor(
            None, build_service, state.openai_serving_models, engine_client, args
        )
        setattr(state, STATE_KEY, service)
        _RESOLVER.service = service
        # tmpfs is RAM: the fast tier goes with the server. Runs after the
        # generation thread has finished its job (threads are joined first).
        atexit.register(service.store.release_fast_root)
        keep_only_latest_lora_info()
        await service.start()


# vLLM's info gauge naming the running and waiting LoRA adapters in its labels.
LORA_INFO_METRIC = "vllm:lora_requests_info"


def keep_only_latest_lora_info(registry=None) -> bool:
    """Bound vLLM's `vllm:lora_requests_info` to its latest series.

    vLLM sets it once per logging interval, labelled with the comma-joined names
    of the running and waiting adapters, and never drops a label set. With an
    adapter per description, every new combination is a new series forever:
    measured 3,746 series and /metrics 66 -> 893 KiB over 4,000 descriptions,
    and the API server's memory with it. Clearing the old series before each
    update keeps the metric's meaning (the newest series is the current state).
    Returns False when the metric is not there (no --enable-lora, or renamed).
    """
    from prometheus_client import REGISTRY

    registry = registry or REGISTRY
    gauge = getattr(registry, "_names_to_collectors", {}).get(LORA_INFO_METRIC)
    if gauge is None or not hasattr(gauge, "clear"):
        return False
    labels = type(gauge).labels

    def latest_only(*args, **kwargs):
        gauge.clear()
        return labels(gauge, *args, **kwargs)

    gauge.labels = latest_only
    return True


def build_service(serving_models, engine_client, args: Namespace) -> AdapterService:
    """Load the generator on the serving device and wire it to vLLM (slow: runs off the loop)."""
    from .. import defaults
    from ..generator import AdapterGenerator
    from .generator_process import GeneratorSpec
    from .metrics import get_metrics
    from .shared_store import SharedAdapterStore
    from .store import AdapterStore

    config = ServeConfig.from_env()
    base_dir = Path(args.model)
    hypernet_dir = config.hypernet_dir or defaults.default_hypernet_dir(base_dir)
    served = serving_models.base_model_paths[0].name
    spec = GeneratorSpec(hypernet_dir, base_dir, served, config.device, config.max_description_chars,
                         config.generator_threads)
    # The child loads while this process loads its own copy (ids, digest, blends need it here).
    worker = _start_generator_process(spec) if config.generator_process else None
    generator = AdapterGenerator.from_pretrained(
        hypernet_dir,
        base_dir,
        base_model_name=served,
        device=config.device,
        max_description_chars=config.max_description_chars,
    )
    if worker is None:
        generator.capture_graphs()  # CUDA graphs now, not on the first requests; no-op on the CPU
    else:
        worker.expected_digest = generator.digest
        worker.wait_ready()
        logger.info("t2l-vllm: adapter generator in child process pid %d", worker.pid)
    store = AdapterStore(config.adapter_dir, config.fast_dir)
    shared = SharedAdapterStore(config.shared_adapter_dir) if config.shared_adapter_dir else None
    logger.info(
        "t2l-vllm: hypernetwork %s (digest %s) on %s; adapters in %s (fast tier %s, shared store %s); "
        "bounds engine=%d disk=%d",
        hypernet_dir, generator.digest[:12], config.device, config.adapter_dir, config.fast_dir,
        config.shared_adapter_dir, config.max_engine_adapters, config.max_disk_adapters,
    )
    engine = VllmEngine(serving_models, engine_client)
    service = AdapterService(generator, store, engine, config, get_metrics(), shared=shared, worker=worker)
    service.max_lora_rank = getattr(args, "max_lora_rank", None)
    service.base_names = (served, base_dir.name)
    return service


def _start_generator_process(spec):
    """A GeneratorProcess, or None (generate on a thread) where this process may not have children."""
    from .generator_process import GeneratorProcess

    try:
        return GeneratorProcess(spec)
    except (AssertionError, OSError) as e:  # e.g. a daemonic process: "daemonic processes are not allowed to have children"
        logger.warning("t2l-vllm: cannot start the generator process (%s); generating on a thread of this process", e)
        return None


class _T2LResolver(LoRAResolver):
    """LoRA resolver for stored `t2l-<hash>` ids (vLLM consults it for unknown model names).

    Only for a plain vLLM server without our endpoint plugin. With the adapter
    service running it declines: the middleware makes t2l ids resident itself,
    with a reference held for the request, and an adapter registered here
    would be counted by nobody.
    """

    def __init__(self):
        self.service: AdapterService | None = None

    async def resolve_lora(self, base_model_name: str, lora_name: str):
        from vllm.lora.request import LoRARequest

        from .store import AdapterStore, StoredAdapterInvalid

        if self.service is not None or not ADAPTER_ID_RE.match(lora_name):
            return None
        config = ServeConfig.from_env()
        try:
            store = AdapterStore(config.adapter_dir, config.fast_dir)
            path = await asyncio.get_running_loop().run_in_executor(None, store.verified_path, lora_name)
        except (KeyError, StoredAdapterInvalid, ValueError, OSError) as e:
            logger.warning("t2l-vllm resolver: not serving %s (%s)", lora_name, type(e).__name__)
            return None
        # vLLM overwrites lora_int_id with its own counter.
        return LoRARequest(lora_name=lora_name, lora_int_id=1, lora_path=str(path))


_RESOLVER = _T2LResolver()


def register_general_plugin() -> None:
    """`vllm.general_plugins` entry: runs in every vLLM process, so it stays cheap."""
    from ..cpu_lora import vllm_install as vllm_cpu_lora

    vllm_cpu_lora.install()
    register_resolver()


def register_resolver() -> None:
    from vllm.lora.resolver import LoRAResolverRegistry

    if RESOLVER_NAME in LoRAResolverRegistry.get_supported_resolvers():
        return
    LoRAResolverRegistry.register_resolver(RESOLVER_NAME, _RESOLVER)
