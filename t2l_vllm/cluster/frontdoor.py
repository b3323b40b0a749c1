"""The cluster's one OpenAI-compatible front door (a Ray Serve ingress deployment).

Life of a request:
    API key checked (the single server's middleware; replicas check it again)
    -> adapter id computed from `task_description` (or taken from a `t2l-` model
       or admin path), without loading any model: the digest comes from a replica
    -> forwarded through Ray Serve with `multiplexed_model_id` = that id (routing
       "affinity"; "plain" forwards without it), streamed back chunk by chunk (SSE included)
    -> a replica that fails before the response has begun (died, or its server
       did not answer) is replaced by another, up to `retries` times; one that
       fails mid-stream ends the stream (SSE: with an error event).

Answered here, from every replica (through their probes):
    /health, /ping          200 while at least one replica's server is healthy, else 503
    /metrics                the front door's routing counters, then every replica's
                            t2l and vLLM metrics labelled replica="<tag>"
    /v1/t2l/cluster         replicas, their health, Ray's deployment status, routing counters
    /v1/models              the base model and every adapter resident on some replica
    GET /v1/t2l/adapters[/{id}]          merged: hits summed, `replicas` holding it
    GET /v1/t2l/library                  merged: `held_by` the replicas that hold each
    DELETE /v1/t2l/adapters/{id}, POST|DELETE .../pin   on every replica
    POST /v1/t2l/library, DELETE /v1/t2l/library/{id}   on every replica
Everything else is forwarded to one replica.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import ray
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from prometheus_client import CollectorRegistry, generate_latest
from ray import serve

from ..adapter import ADAPTER_ID_RE
from ..serving.http import ApiKeyMiddleware, error_body
from .config import ClusterConfig
from .promtext import merge_expositions
from .replica import PROBE_PREFIX, ReplicaUnavailable, forwardable
from .routing import ADMIN_ADAPTERS, ADMIN_LIBRARY, MAX_ROUTED_BODY, AffinityTable, RoutingMetrics, adapter_for, handle_options

logger = logging.getLogger("ray.serve")

FAN_OUT_TIMEOUT_S = 15.0
RETRY_BACKOFF_S = (0.2, 0.5, 1.0, 2.0)
REPLICA_HEADER = "x-t2l-replica"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def _retriable(e: BaseException) -> bool:
    """Failures before a response began that another replica can fix."""
    return isinstance(e, (ray.exceptions.RayActorError, ReplicaUnavailable))


def _response_headers(headers) -> dict[str, str]:
    """A replica's response headers, less those the front door's own HTTP server sets."""
    return {k: v for k, v in headers if k.lower() not in ("date", "server")}


def _json(status: int, payload: Any, headers: dict | None = None) -> Response:
    return Response(json.dumps(payload), status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str, param: str | None = None) -> Response:
    return Response(error_body(status, message, param), status_code=status, media_type="application/json")


class T2LFrontDoor:
    """Routes OpenAI requests to replicas by adapter id; answers cluster-wide routes itself."""

    def __init__(self, replicas, config: ClusterConfig):
        self.replicas = replicas
        self.config = config
        self.app_name = serve.get_replica_context().app_name
        self.registry = CollectorRegistry()
        self.metrics = RoutingMetrics(self.registry)
        self.table = AffinityTable()
        self._info: dict | None = None

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_asgi_app(self)

    # ---- replicas ------------------------------------------------------------------

    async def replica_info(self) -> dict:
        """Digest and limits of the replicas' servers (asked once; every replica runs the same flags)."""
        if self._info is None:
            self._info = await self.replicas.info.remote()
        return self._info

    async def probes(self) -> dict[str, Any]:
        """replica tag -> its probe actor, for the replicas alive now."""
        prefix = f"{PROBE_PREFIX}{self.app_name}/"
        named = await asyncio.to_thread(ray.util.list_named_actors, True)
        out = {}
        for entry in named:
            if entry["name"].startswith(prefix):
                try:
                    out[entry["name"][len(prefix):]] = ray.get_actor(entry["name"], namespace=entry["namespace"])
                except ValueError:
                    continue  # gone since the listing
        return out

    async def fan_out(self, method: str, target: str, headers, body: bytes = b"") -> dict[str, tuple]:
        """The same request to every replica's server: tag -> (status, headers, body); status 0: no answer."""
        probes = await self.probes()

        async def one(probe):
            try:
                return await asyncio.wait_for(probe.call.remote(method, target, headers, body), FAN_OUT_TIMEOUT_S)
            except Exception as e:
                return 0, [], f"{type(e).__name__}".encode()

        results = await asyncio.gather(*(one(p) for p in probes.values()))
        return dict(zip(probes, results))

    # ---- forwarding -----------------------------------------------------------------

    async def forward(self, request: Request) -> Response:
        body = await _capped_body(request)
        if body is None:
            return _error(413, f"request body over {MAX_ROUTED_BODY} bytes")
        method, path = request.method, request.url.path
        target = path + (f"?{request.url.query}" if request.url.query else "")
        headers = forwardable(request.headers.items())
        try:
            info = await self.replica_info()
        except Exception as e:
            return _error(503, f"no replica is ready ({type(e).__name__}); retry later")
        aid = adapter_for(method, path, body, info["digest"], info["max_description_chars"])
        handle = self.replicas.options(stream=True, **handle_options(aid, self.config.routing))
        for attempt in range(self.config.retries + 1):
            stream = handle.forward.remote(method, target, headers, body)
            try:
                head = await stream.__anext__()
                break
            except asyncio.CancelledError:
                stream.cancel()  # the client left before the answer began
                raise
            except Exception as e:
                if not _retriable(e):
                    logger.exception("t2l-vllm: %s %s failed on a replica", method, path)
                    return _error(500, f"the replica failed ({type(e).__name__}); see the replica's log")
                if attempt == self.config.retries:
                    self.metrics.failed.inc()
                    logger.warning("t2l-vllm: %s %s failed on %d replicas (%s)", method, path, attempt + 1, type(e).__name__)
                    return _error(503, f"no replica answered after {attempt + 1} attempts; retry later")
                self.metrics.retries.inc()
                await asyncio.sleep(RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)])
        self.metrics.requests.labels(self.table.record(aid, head["replica"]) if aid else "none").inc()
        out_headers = _response_headers(head["headers"])
        out_headers[REPLICA_HEADER] = head["replica"]
        sse = out_headers.get("content-type", "").startswith("text/event-stream")
        return StreamingResponse(self._relay(stream, sse), status_code=head["status"], headers=out_headers)

    async def _relay(self, stream, sse: bool):
        done = False
        try:
            async for chunk in stream:
                yield chunk
            done = True
        except Exception as e:
            if not _retriable(e) and not isinstance(e, ray.exceptions.RayError):
                raise
            self.metrics.broken_streams.inc()
            logger.warning("t2l-vllm: a replica failed mid-response (%s)", type(e).__name__)
            if sse:
                err = json.loads(error_body(500, "the replica serving this stream failed; send the request again"))
                yield f"data: {json.dumps(err)}\n\n".encode()
        finally:
            if not done:
                stream.cancel()  # the client left, or the replica failed: stop the generation

    # ---- cluster-wide routes ----------------------------------------------------------

    async def health(self) -> Response:
        results = await self.fan_out("GET", "/health", [])
        if any(status == 200 for status, _, _ in results.values()):
            return Response(status_code=200)
        return _error(503, f"no healthy replica ({len(results)} reachable)")

    async def metrics_text(self) -> Response:
        results = await self.fan_out("GET", "/metrics", [])
        replicas = merge_expositions({t: b.decode(errors="replace") for t, (s, _, b) in results.items() if s == 200})
        return Response(generate_latest(self.registry) + replicas, media_type="text/plain; version=0.0.4")

    async def cluster(self) -> Response:
        probes = await self.probes()
        health = await self.fan_out("GET", "/health", [])

        async def info(probe):
            try:
                return await asyncio.wait_for(probe.info.remote(), FAN_OUT_TIMEOUT_S)
            except Exception:
                return {}

        infos = await asyncio.gather(*(info(p) for p in probes.values()))
        replicas = [
            {"replica": tag, "healthy": health.get(tag, (0,))[0] == 200,
             **{k: i.get(k) for k in ("node", "pid", "server_pid")}}
            for tag, i in zip(probes, infos)
        ]
        try:
            status = await asyncio.to_thread(serve.status)
            app = status.applications[self.app_name]
            deployments = {name: {"status": str(d.status.value if hasattr(d.status, "value") else d.status),
                                  "replica_states": {str(k.value if hasattr(k, "value") else k): v
                                                     for k, v in d.replica_states.items()}}
                           for name, d in app.deployments.items()}
        except Exception as e:
            deployments = {"error": type(e).__name__}
        return _json(200, {
            "object": "t2l.cluster",
            "app": self.app_name,
            "replicas_wanted": self.config.replicas,
            "replicas_healthy": sum(r["healthy"] for r in replicas),
            "replicas": sorted(replicas, key=lambda r: r["replica"]),
            "deployments": deployments,
            "routing_policy": self.config.routing,
            "routing": self.metrics.snapshot(),
            "adapters_routed": len(self.table),
            "most_replicas_per_adapter": self.table.most_copies(),
            "max_adapters_per_replica": self.config.adapters_per_replica(),
            "max_ongoing_requests": self.config.max_ongoing_requests,
            "shared_adapter_dir": str(self.config.shared_dir()),
        })

    async def models(self, request: Request) -> Response:
        ok, failed = await self._answers("GET", "/v1/models", request)
        if not ok:
            return failed
        data: dict[str, dict] = {}
        for body in ok.values():
            for m in body.get("data", []):
                data.setdefault(m.get("id"), m)
        return _json(200, {"object": "list", "data": list(data.values())})

    async def list_adapters(self, request: Request) -> Response:
        return await self._merged_list(request, ADMIN_ADAPTERS)

    async def list_library(self, request: Request) -> Response:
        """The library as the replicas hold it: each adapter once, `held_by` the replicas that list it."""
        return await self._merged_list(request, ADMIN_LIBRARY)

    async def _merged_list(self, request: Request, path: str) -> Response:
        ok, failed = await self._answers("GET", path, request)
        if not ok:
            return failed
        records: dict[str, list] = {}
        for tag, body in ok.items():
            for r in body.get("data", []):
                records.setdefault(r["id"], []).append((tag, r))
        merged = [{**merge_records(rs), "held_by": sorted(tag for tag, _ in rs)} for rs in records.values()]
        merged.sort(key=lambda r: r.get("last_used") or 0, reverse=True)
        return _json(200, {"object": "list", "data": merged})

    async def show_adapter(self, request: Request, adapter_id: str) -> Response:
        ok, failed = await self._answers("GET", f"{ADMIN_ADAPTERS}/{adapter_id}", request)
        if not ok:
            return failed
        return _json(200, merge_records(list(ok.items())))

    async def on_every_replica(self, request: Request) -> Response:
        """DELETE an adapter, pin or unpin it, upload or delete a library adapter, on every replica (the answers merged)."""
        body = await _capped_body(request)
        if body is None:
            return _error(413, f"request body over {MAX_ROUTED_BODY} bytes")
        results = await self.fan_out(request.method, request.url.path, forwardable(request.headers.items()), body)
        statuses = {s for s, _, _ in results.values()}
        for wanted in (409, 500, 429, 401, 400):  # the most telling error first
            for status, headers, body in results.values():
                if status == wanted:
                    return Response(body, status_code=status, headers=_response_headers(headers))
        ok = [json.loads(b) for s, _, b in results.values() if s == 200]
        if ok:
            if request.method == "DELETE" and not request.url.path.endswith("/pin"):  # {"deleted": ...}
                return _json(200, ok[0])
            return _json(200, merge_records([(tag, json.loads(b)) for tag, (s, _, b) in results.items() if s == 200]))
        if 404 in statuses:
            return next(Response(b, status_code=404, headers=_response_headers(h)) for s, h, b in results.values() if s == 404)
        return _error(503, "no replica answered; retry later")

    async def _answers(self, method: str, target: str, request: Request) -> tuple[dict, Response | None]:
        """Every replica's JSON answer (tag -> body); or ({}, the response to send) when none is a 200."""
        results = await self.fan_out(method, target, forwardable(request.headers.items()))
        ok = {tag: json.loads(b) for tag, (s, _, b) in results.items() if s == 200}
        if ok:
            return ok, None
        for status, headers, body in results.values():
            if status:
                return {}, Response(body, status_code=status, headers=_response_headers(headers))
        return {}, _error(503, "no replica answered; retry later")


def merge_records(records: list[tuple[str, dict]]) -> dict:
    """One adapter as several replicas describe it: counts summed, `replicas` = where it is resident."""
    out = dict(records[0][1])
    out["hits"] = sum(r.get("hits") or 0 for _, r in records)
    out["in_use"] = sum(r.get("in_use") or 0 for _, r in records)
    out["resident"] = any(r.get("resident") for _, r in records)
    out["pinned"] = any(r.get("pinned") for _, r in records)
    used = [r["last_used"] for _, r in records if r.get("last_used")]
    out["last_used"] = max(used) if used else None
    out["replicas"] = sorted(tag for tag, r in records if r.get("resident"))
    return out


async def _capped_body(request: Request, limit: int = MAX_ROUTED_BODY) -> bytes | None:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def build_asgi_app(door: T2LFrontDoor) -> FastAPI:
    # No docs routes of its own: /docs and /openapi.json are the replicas' (vLLM's), forwarded.
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    for path in ("/health", "/ping"):
        app.add_api_route(path, door.health, methods=["GET"])
    app.add_api_route("/metrics", door.metrics_text, methods=["GET"])
    app.add_api_route("/v1/t2l/cluster", door.cluster, methods=["GET"])
    app.add_api_route("/v1/models", door.models, methods=["GET"])
    app.add_api_route(ADMIN_ADAPTERS, door.list_adapters, methods=["GET"])

    async def show(request: Request, adapter_id: str) -> Response:
        if not ADAPTER_ID_RE.match(adapter_id):
            return _error(404, f"no adapter {adapter_id!r}: ids are t2l- followed by 32 hex digits", "adapter_id")
        return await door.show_adapter(request, adapter_id)

    async def everywhere(request: Request, adapter_id: str) -> Response:
        if not ADAPTER_ID_RE.match(adapter_id):
            return _error(404, f"no adapter {adapter_id!r}: ids are t2l- followed by 32 hex digits", "adapter_id")
        return await door.on_every_replica(request)

    app.add_api_route(ADMIN_ADAPTERS + "/{adapter_id}", show, methods=["GET"])
    app.add_api_route(ADMIN_ADAPTERS + "/{adapter_id}", everywhere, methods=["DELETE"])
    app.add_api_route(ADMIN_ADAPTERS + "/{adapter_id}/pin", everywhere, methods=["POST", "DELETE"])
    # The library on every replica: an upload is content-addressed, so each replica stores the same id.
    app.add_api_route(ADMIN_LIBRARY, door.list_library, methods=["GET"])
    app.add_api_route(ADMIN_LIBRARY, door.on_every_replica, methods=["POST"])
    app.add_api_route(ADMIN_LIBRARY + "/{adapter_id}", everywhere, methods=["DELETE"])
    app.add_api_route("/{path:path}", door.forward, methods=METHODS)
    if door.config.api_key:
        app.add_middleware(
            ApiKeyMiddleware, tokens=[door.config.api_key], public_paths=door.config.serve_config().public_paths,
        )
    return app
