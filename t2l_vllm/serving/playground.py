"""The playground: a static page that compares an adapter, a system prompt and the base model.

`GET /t2l/playground` (plus its script and style sheet) serves files shipped in
`serving/static/`, unchanged, with a Content-Security-Policy that lets the page
load and fetch nothing but this server. The page holds no data: with --api-key
it is served without the key (a browser cannot send an Authorization header
when it navigates), asks for the key in a password field, keeps it in the
tab's memory only, and sends it as `Authorization: Bearer KEY` on every fetch
(/v1/models, /v1/t2l/adapters, /v1/chat/completions), which need it as every
data route does. `--no-playground` removes the three routes.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

PLAYGROUND_PATH = "/t2l/playground"
# route -> (packaged file, media type)
_FILES = {
    PLAYGROUND_PATH: ("playground.html", "text/html; charset=utf-8"),
    PLAYGROUND_PATH + "/app.js": ("playground.js", "text/javascript; charset=utf-8"),
    PLAYGROUND_PATH + "/app.css": ("playground.css", "text/css; charset=utf-8"),
}
# Routes answered without the API key: static files only.
PLAYGROUND_PATHS = tuple(_FILES)
# Nothing from outside this server, no inline script or style, no framing, no form posts.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def static_file(name: str) -> bytes:
    """A packaged file of the page (t2l_vllm/serving/static/NAME)."""
    return resources.files(__package__).joinpath("static", name).read_bytes()


def playground_router() -> APIRouter:
    """The page's three GET routes; the files are read once, here."""
    router = APIRouter()
    for path, (name, media_type) in _FILES.items():
        router.add_api_route(path, _endpoint(static_file(name), media_type), methods=["GET"], include_in_schema=False)
    return router


def _endpoint(body: bytes, media_type: str):
    # A closure, not default arguments: FastAPI would read those as query parameters.
    async def serve() -> Response:
        return Response(body, media_type=media_type, headers=HEADERS)

    return serve
