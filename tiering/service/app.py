"""The FastAPI application of the sidecar: routes, probes, metrics, error responses, lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tiering.service.errors import ApiError
from tiering.service.metrics import ServiceMetrics
from tiering.service.routes import router
from tiering.service.runtime import Readiness, ServiceRuntime
from tiering.service.settings import ServiceSettings
from tiering.service.stores import open_store
from tiering.store import TieredStore

logger = logging.getLogger(__name__)


def create_app(
    settings: ServiceSettings,
    *,
    store: TieredStore | None = None,
    opener: Callable[[ServiceSettings], TieredStore] = open_store,
    metrics: ServiceMetrics | None = None,
) -> FastAPI:
    """Build the application for ``settings``.

    Args:
        settings: the service settings.
        store: serve this open store instead of opening one; it is closed at shutdown.
        opener: opens the store from the settings at startup, in a background thread.
        metrics: the metrics to export; a fresh registry by default.

    The store opens and the background tasks start in the lifespan, so use the app
    as a context (``with TestClient(app)``) or under an ASGI server.
    """
    runtime = ServiceRuntime(settings, metrics or ServiceMetrics(), store=store, opener=opener)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(runtime.stop)

    app = FastAPI(
        title="vector-tiering sidecar",
        summary="Upsert, search, get and delete over a hot vector store and a cold tier on object storage.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.include_router(router)
    _add_probes(app, runtime, settings)
    _add_error_handlers(app, runtime)
    _add_body_limit(app, settings.max_body_bytes)
    return app


def _add_probes(app: FastAPI, runtime: ServiceRuntime, settings: ServiceSettings) -> None:
    probe_timeout_s = settings.backend_timeout_s + 1.0

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        """Liveness: the process runs, and opening the store has not failed for good."""
        if runtime.alive():
            return JSONResponse({"status": "alive"})
        return JSONResponse({"status": "failed", "reason": runtime.open_error}, status_code=503)

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: the store is open (cold tier loaded) and the backend returns a count."""
        with anyio.move_on_after(probe_timeout_s):
            state = await anyio.to_thread.run_sync(runtime.readiness, abandon_on_cancel=True)
            runtime.metrics.ready.set(1 if state.ready else 0)
            return _readiness_response(state)
        runtime.metrics.ready.set(0)
        return _readiness_response(Readiness(False, f"the backend did not answer within {probe_timeout_s} s"))

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        """Prometheus metrics in the text exposition format."""
        if runtime.store is not None:
            runtime.metrics.refresh_store(runtime.store)
        return Response(runtime.metrics.render(), media_type=runtime.metrics.content_type)


def _readiness_response(state: Readiness) -> JSONResponse:
    if state.ready:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not ready", "reason": state.reason}, status_code=503)


def _add_error_handlers(app: FastAPI, runtime: ServiceRuntime) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.error, "message": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_describe_problem(problem) for problem in exc.errors()]
        message = "Invalid request: " + "; ".join(problems[:5])
        if len(problems) > 5:
            message += f"; and {len(problems) - 5} more problems"
        operation = request.url.path.rsplit("/", 1)[-1] or "request"
        logger.warning("%s %s rejected with 422: %s", request.method, request.url.path, message)
        runtime.metrics.observe_request(operation, "none", 422, 0.0)
        return JSONResponse({"error": "RequestValidationError", "message": message}, status_code=422)


def _describe_problem(problem: dict[str, object]) -> str:
    location = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")  # type: ignore[attr-defined]
    value = problem.get("input")
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{location or 'body'}: {problem.get('msg')} (got {shown})"


def _add_body_limit(app: FastAPI, max_body_bytes: int) -> None:
    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body_bytes:
            logger.warning(
                "%s %s rejected with 413: body of %s bytes", request.method, request.url.path, length
            )
            return JSONResponse(
                {
                    "error": "PayloadTooLarge",
                    "message": f"Request body of {length} bytes exceeds the limit of {max_body_bytes} "
                    "bytes (TIERING_MAX_BODY_BYTES). Split the batch.",
                },
                status_code=413,
            )
        # NOTE: a chunked body without Content-Length is not measured here.
        return await call_next(request)
