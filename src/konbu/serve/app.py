"""The FastAPI app: routes from runs_api, predict_api and train_api, the page from static/, and the
rules every request passes first (the token, the body limit, the Host check, errors as JSON).

    app = create_app("runs")                                # what `konbu serve` runs under uvicorn
    from fastapi.testclient import TestClient
    client = TestClient(app, base_url="http://127.0.0.1")   # the tests talk to it in-process
"""

import json
import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from ..errors import ImageError, KonbuError, RunDirectoryError, UnknownNameError
from . import predict_api, runs_api, train_api
from .cache import RunCache
from .finite import FiniteJSONResponse
from .jobs import Busy, Jobs
from .safety import MAX_UPLOAD_BYTES, TOKEN_COOKIE, NotFound, token_matches

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("konbu.serve")
OPEN_PATHS = ("/healthz",)    # answer without the token: a liveness probe learns nothing else


def create_app(runs="runs", token: str | None = None, max_jobs: int = 1, cors_origins=(), device="cpu",
               allowed_hosts=None) -> FastAPI:
    """The web app over the run directories in `runs`.

    token: required on every request but /healthz when set (`Authorization: Bearer T`, or `?token=T`
    once in the browser, which then keeps it in a cookie). max_jobs: training jobs at a time.
    cors_origins: origins allowed to call the API from other pages; none by default. allowed_hosts:
    Host headers answered; default, without a token, only the loopback names, so a web page on
    another site can't reach the server through a DNS name it re-points at 127.0.0.1."""
    runs = Path(runs).resolve()
    jobs = Jobs(runs, max_jobs)

    @asynccontextmanager
    async def lifespan(app):
        yield
        jobs.stop_all()   # each job checkpoints and can be resumed

    app = FastAPI(title="konbu", description="Draw, predict, inspect and train konbu runs.",
                  version=_version(), docs_url=None, redoc_url=None, lifespan=lifespan,
                  default_response_class=FiniteJSONResponse)
    app.state.runs = runs
    app.state.token = token
    app.state.cache = RunCache(device)
    app.state.jobs = jobs

    for module in (runs_api, predict_api, train_api):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    def docs():
        """The OpenAPI page, with Swagger UI from the package (FastAPI's default loads it from a CDN)."""
        return get_swagger_ui_html(openapi_url="/openapi.json", title="konbu API",
                                   swagger_js_url="/static/vendor/swagger-ui-bundle.js",
                                   swagger_css_url="/static/vendor/swagger-ui.css", swagger_favicon_url="data:,")

    @app.get("/healthz", tags=["server"])
    def healthz():
        return {"status": "ok"}

    _handle_errors(app)
    app.add_middleware(_TokenCheck, token=token)
    app.add_middleware(_BodyLimit, limit=MAX_UPLOAD_BYTES)
    if allowed_hosts is None and token is None:
        allowed_hosts = ["127.0.0.1", "localhost", "[::1]", "::1"]
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["*"],
                           allow_headers=["*"])
    return app


def _version() -> str:
    from .. import __version__
    return __version__


# ----------------------------------------------------------------------------- errors as JSON

# which KonbuError means which status; the rest are 400: the request asked for something wrong
# RunDirectoryError: the run exists but is not (yet) usable: still before its first epoch, or damaged
# Busy: a training job can't start while --max-jobs run
STATUS = ((NotFound, 404), (RunDirectoryError, 409), (Busy, 409), (UnknownNameError, 400), (ImageError, 400))


def error_status(error: Exception) -> int:
    return next((status for kind, status in STATUS if isinstance(error, kind)), 400)


def _handle_errors(app: FastAPI):
    """Every error is {"error": message}; a bug is a 500 with no traceback (it goes to the log)."""

    @app.exception_handler(KonbuError)
    @app.exception_handler(NotFound)
    def known(request: Request, error: Exception):
        # paths relative to the runs folder: a client needs the run's name, not the server's disk layout
        message = str(error).replace(f"{request.app.state.runs}{os.sep}", "")
        return JSONResponse({"error": message}, status_code=error_status(error))

    @app.exception_handler(StarletteHTTPException)
    def http(request: Request, error: StarletteHTTPException):
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, error: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in error.errors())
        return JSONResponse({"error": f"bad request: {problems}"}, status_code=400)

    @app.exception_handler(Exception)
    def bug(request: Request, error: Exception):
        log.exception("error answering %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(error).__name__}); the server log has the details"},
                            status_code=500)


# ----------------------------------------------------------------------------- middleware (plain ASGI)

async def _send_json(send, status: int, message: str, headers=()):
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class _TokenCheck:
    """401 unless the request carries the token: a Bearer header, the cookie, or ?token= (which
    sets the cookie, so the page's own requests and <img> tags carry it from then on)."""

    def __init__(self, app, token):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.token is None or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        request = Request(scope)
        header = request.headers.get("authorization", "")
        query = request.query_params.get("token")
        given = [header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None,
                 request.cookies.get(TOKEN_COOKIE), query]
        if not any(token_matches(self.token, value) for value in given if value):
            return await _send_json(send, 401, "this konbu server needs its token: open the address "
                                    "`konbu serve` printed (with ?token=...), or send Authorization: Bearer TOKEN")
        if query is None or not token_matches(self.token, query):
            return await self.app(scope, receive, send)

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                cookie = f"{TOKEN_COOKIE}={query}; Path=/; HttpOnly; SameSite=Strict"
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
            await send(message)
        await self.app(scope, receive, send_with_cookie)


class _BodyLimit:
    """413 for a request body over `limit` bytes: at once when Content-Length says so, otherwise as
    soon as the streamed body passes it (never buffering more than the limit)."""

    def __init__(self, app, limit):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = f"the upload is larger than {self.limit // (1024 * 1024)} MB; send a smaller image"
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await _send_json(send, 413, too_large)
        received = 0
        started = False

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracking_send)
        except _TooLarge:   # raised where nothing turned it into a response
            if not started:
                await _send_json(send, 413, too_large)


class _TooLarge(StarletteHTTPException):
    """An HTTPException, so FastAPI's body parsing re-raises it rather than calling it a parse error."""

    def __init__(self):
        super().__init__(413, f"the upload is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB; "
                              "send a smaller image")
