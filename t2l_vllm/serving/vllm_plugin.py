"""Everything that touches vLLM internals (vLLM 0.32 API server), in one module.

Two entry points (setup.py), both named in VLLM_PLUGINS by `t2l-vllm serve`:

- `vllm.general_plugins` -> `register_resolver()`: a LoRA resolver, so a request
  whose `model` is a stored `t2l-<hash>` is served even by a plain vLLM server
  (needs VLLM_ALLOW_RUNTIME_LORA_UPDATING=1).
- `vllm.endpoint_plugins` -> `T2LEndpointPlugin`: an ASGI middleware that reads
  `task_description` from `/v1/chat/completions` and `/v1/completions`, makes the
  adapter resident and points `model` at it; and the `/v1/t2l/adapters` routes.

The middleware is added inside vLLM's own middleware stack, so `--api-key`
guards it (and the admin routes, under /v1) before any generation happens.
"""

from __future__ import annotations

import asyncio
import json
import logging
from argparse import Namespace
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from vllm.lora.resolver import LoRAResolver

from ..adapter import ADAPTER_ID_RE, ADAPTER_PREFIX
from .config import ServeConfig
from .service import AdapterEngine, AdapterInUse, AdapterNotFound, AdapterService, GenerationFailed

# A child of vLLM's logger, so messages go where vLLM's own go.
logger = logging.getLogger("vllm.t2l_vllm")

GENERAL_PLUGIN = "t2l_vllm"
ENDPOINT_PLUGIN = "t2l_vllm_endpoints"
RESOLVER_NAME = "t2l_vllm"
WRAPPED_PATHS = ("/v1/chat/completions", "/v1/completions")
ADAPTER_HEADER = b"x-t2l-adapter-id"
STATE_KEY = "t2l_service"
MAX_BODY_BYTES = 64 * 1024 * 1024


# ---- OpenAI-style errors ---------------------------------------------------------

_ERROR_TYPES = {
    400: "BadRequestError",
    404: "NotFoundError",
    409: "ConflictError",
    413: "RequestTooLargeError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


def error_body(status: int, message: str, param: str | None = None) -> bytes:
    """vLLM's error JSON: {"error": {"message", "type", "param", "code"}}."""
    err = {"message": message, "type": _ERROR_TYPES.get(status, HTTPStatus(status).phrase), "param": param, "code": status}
    return json.dumps({"error": err}).encode()


async def _send_json(send, status: int, body: bytes) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


# ---- the engine side -------------------------------------------------------------


class VllmEngine(AdapterEngine):
    """Registers adapters with vLLM's OpenAI front end and its engine."""

    def __init__(self, serving_models: Any, engine_client: Any):
        self.models = serving_models
        self.engine_client = engine_client

    async def register(self, adapter_id: str, path: Path) -> None:
        from vllm.entrypoints.serve.engine.protocol import ErrorResponse
        from vllm.entrypoints.serve.lora.protocol import LoadLoRAAdapterRequest

        if adapter_id in self.models.lora_requests:
            return
        result = await self.models.load_lora_adapter(
            LoadLoRAAdapterRequest(lora_name=adapter_id, lora_path=str(Path(path).resolve()))
        )
        if isinstance(result, ErrorResponse):
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
    """Pure ASGI: rewrites `task_description` requests to the generated adapter."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in WRAPPED_PATHS:
            return await self.app(scope, receive, send)
        service: AdapterService | None = getattr(scope["app"].state, STATE_KEY, None)
        body, more = await _read_body(receive)
        if more:
            # Too big to inspect, and passing it on could drop a task_description silently.
            return await _send_json(send, 413, error_body(413, f"request body over {MAX_BODY_BYTES} bytes"))
        if service is None:
            return await self.app(scope, _replay(body, receive), send)
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            payload = None
        if not isinstance(payload, dict):
            # Not ours to judge: vLLM answers malformed bodies with its own 400.
            return await self.app(scope, _replay(body, receive), send)

        try:
            adapter_id = await self._resolve(scope, service, payload)
        except _HTTPError as e:
            return await _send_json(send, e.status, error_body(e.status, e.message, e.param))
        if adapter_id is None:
            return await self.app(scope, _replay(body, receive), send)

        try:
            new_body = json.dumps(payload).encode()
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(new_body)).encode()))
            scope = dict(scope, headers=headers)

            async def send_with_header(message):
                if message["type"] == "http.response.start":
                    message = dict(message, headers=[*message.get("headers", []), (ADAPTER_HEADER, adapter_id.encode())])
                await send(message)

            await self.app(scope, _replay(new_body, receive), send_with_header)
        finally:
            service.release(adapter_id)

    async def _resolve(self, scope, service: AdapterService, payload: dict) -> str | None:
        """The adapter a request needs (acquired), or None to pass it through untouched."""
        model = payload.get("model")
        if "task_description" in payload:
            description = payload.pop("task_description")
            models = scope["app"].state.openai_serving_models
            try:
                wanted = service.adapter_id_for(description)
            except ValueError as e:
                raise _HTTPError(400, str(e), "task_description") from None
            if model and not models.is_base_model(model) and model != wanted:
                raise _HTTPError(
                    400,
                    f"task_description selects its own adapter; drop `model` ({model!r}) or set it to the base model",
                    "model",
                )
            try:
                adapter_id = await service.acquire_description(description)
            except GenerationFailed as e:
                logger.exception("adapter generation failed")
                raise _HTTPError(500, str(e), "task_description") from None
            payload["model"] = adapter_id
            return adapter_id
        if isinstance(model, str) and model.startswith(ADAPTER_PREFIX):
            if not ADAPTER_ID_RE.match(model):
                raise _HTTPError(404, f"The model `{model}` does not exist: not a valid t2l adapter id.", "model")
            try:
                return await service.acquire_id(model)
            except AdapterNotFound:
                raise _HTTPError(404, f"The model `{model}` does not exist (no such t2l adapter).", "model") from None
            except GenerationFailed as e:
                raise _HTTPError(500, str(e), "model") from None
        return None


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


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


def _admin_router() -> APIRouter:
    router = APIRouter(prefix="/v1/t2l")

    def err(status: int, message: str, param: str | None = None) -> Response:
        return Response(error_body(status, message, param), status_code=status, media_type="application/json")

    def service_of(request: Request) -> AdapterService:
        return getattr(request.app.state, STATE_KEY)

    def bad_id(adapter_id: str) -> Response | None:
        if not ADAPTER_ID_RE.match(adapter_id):
            return err(404, f"no adapter {adapter_id!r}: ids are t2l- followed by 32 hex digits", "adapter_id")
        return None

    @router.post("/adapters")
    async def create_adapter(request: Request):
        try:
            payload = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return err(400, f"request body is not valid JSON: {e}")
        if not isinstance(payload, dict) or "task_description" not in payload:
            return err(400, "expected a JSON object with a task_description string", "task_description")
        try:
            return JSONResponse(await service_of(request).create(payload["task_description"]))
        except ValueError as e:
            return err(400, str(e), "task_description")
        except GenerationFailed as e:
            return err(500, str(e), "task_description")

    @router.get("/adapters")
    async def list_adapters(request: Request):
        return JSONResponse({"object": "list", "data": service_of(request).list()})

    @router.get("/adapters/{adapter_id}")
    async def show_adapter(adapter_id: str, request: Request):
        if (bad := bad_id(adapter_id)) is not None:
            return bad
        try:
            return JSONResponse(service_of(request).describe(adapter_id))
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
        try:
            await service_of(request).delete(adapter_id)
        except AdapterNotFound:
            return err(404, f"no adapter {adapter_id}", "adapter_id")
        except AdapterInUse as e:
            return err(409, str(e), "adapter_id")
        return JSONResponse({"id": adapter_id, "object": "t2l.adapter", "deleted": True})

    return router


# ---- plugin entry points ---------------------------------------------------------


class T2LEndpointPlugin:
    """`vllm.endpoint_plugins` entry: middleware + admin routes + the adapter service."""

    name = ENDPOINT_PLUGIN
    required_tasks = ("generate",)

    def attach_router(self, app) -> None:
        app.include_router(_admin_router())
        app.add_middleware(TaskDescriptionMiddleware)

    async def init_state(self, engine_client, state, args: Namespace) -> None:
        if engine_client is None:
            return
        service = await asyncio.get_running_loop().run_in_executor(
            None, build_service, state.openai_serving_models, engine_client, args
        )
        setattr(state, STATE_KEY, service)
        _RESOLVER.service = service


def build_service(serving_models, engine_client, args: Namespace) -> AdapterService:
    """Load the generator on the serving device and wire it to vLLM (slow: runs off the loop)."""
    from .. import defaults
    from ..generator import AdapterGenerator
    from .metrics import get_metrics
    from .store import AdapterStore

    config = ServeConfig.from_env()
    base_dir = Path(args.model)
    hypernet_dir = config.hypernet_dir or defaults.default_hypernet_dir(base_dir)
    served = serving_models.base_model_paths[0].name
    generator = AdapterGenerator.from_pretrained(
        hypernet_dir,
        base_dir,
        base_model_name=served,
        device=config.device,
        max_description_chars=config.max_description_chars,
    )
    store = AdapterStore(config.adapter_dir, config.fast_dir)
    logger.info(
        "t2l-vllm: hypernetwork %s (digest %s) on %s; adapters in %s (fast tier %s); bounds engine=%d disk=%d",
        hypernet_dir, generator.digest[:12], config.device, config.adapter_dir, config.fast_dir,
        config.max_engine_adapters, config.max_disk_adapters,
    )
    return AdapterService(generator, store, VllmEngine(serving_models, engine_client), config, get_metrics())


class _T2LResolver(LoRAResolver):
    """LoRA resolver for stored `t2l-<hash>` ids (vLLM consults it for unknown model names)."""

    def __init__(self):
        self.service: AdapterService | None = None

    async def resolve_lora(self, base_model_name: str, lora_name: str):
        from vllm.lora.request import LoRARequest

        from .store import AdapterStore

        if not ADAPTER_ID_RE.match(lora_name):
            return None
        if self.service is not None:
            store = self.service.store
        else:  # a plain `vllm serve` with only the general plugin
            config = ServeConfig.from_env()
            store = AdapterStore(config.adapter_dir, config.fast_dir)
        if not store.exists(lora_name):
            return None
        path = await asyncio.get_running_loop().run_in_executor(None, store.load_path, lora_name)
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
