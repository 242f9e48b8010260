"""The HTTP API: create_app() wires routers, backing services and one table of error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from app.api.body_limit import BodyLimitMiddleware
from app.api.request_metrics import RequestMeter, RequestMetricsMiddleware
from app.api.routes import (
    admin,
    batches,
    datasets,
    evaluations,
    files,
    metrics,
    models,
    reviews,
    training_jobs,
    webhooks,
)
from app.dashboard import cancel as dashboard_cancel
from app.dashboard import reviews as dashboard_reviews
from app.dashboard import routes as dashboard
from app.dashboard.security import DashboardHeadersMiddleware
from app.kernel.config import Settings, get_settings
from app.kernel.context import ProcessContext
from app.kernel.db.retry import first_line
from app.kernel.db.session import make_read_session_factory
from app.kernel.errors import (
    ConflictError,
    FindapError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    QuotaExceededError,
    ServiceUnavailableError,
    TooManyRequestsError,
    UnauthorizedError,
)
from app.kernel.metrics_store import MetricsStore
from app.schemas.batch import BatchCreate
from app.services.uploads import unknown_field_hint

log = logging.getLogger(__name__)

ERROR_STATUS: dict[type[FindapError], int] = {
    InvalidInputError: 422,
    NotFoundError: 404,
    ConflictError: 409,
    ServiceUnavailableError: 503,
    UnauthorizedError: 401,
    ForbiddenError: 403,
    TooManyRequestsError: 429,
    QuotaExceededError: 413,
}


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API bound to the Postgres and Redis named in settings."""
    settings = settings or get_settings()
    settings.require_urls()
    meter = RequestMeter()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with (
            ProcessContext.open(settings) as context,
            meter.flushing(MetricsStore(context.redis, settings.queue_name)),
        ):
            app.state.settings = settings
            app.state.session_factory = context.session_factory
            app.state.read_session_factory = make_read_session_factory(context.engine)
            app.state.redis = context.redis
            yield

    app = FastAPI(
        title="findap",
        version="0.1.0",
        summary="Distil preference pairs (FAP and SCP) from a policy model and an LLM judge.",
        lifespan=lifespan,
    )
    # Counted as the body streams in: a bigger request is cut off with 413, never read whole.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes)
    app.add_middleware(DashboardHeadersMiddleware)
    # Outermost: times the whole answer, the other middlewares' refusals (413) included.
    app.add_middleware(RequestMetricsMiddleware, meter=meter)
    app.state.request_meter = meter
    app.include_router(batches.router)
    app.include_router(reviews.router)
    app.include_router(datasets.router)
    app.include_router(evaluations.router)
    app.include_router(files.router)
    app.include_router(training_jobs.router)
    app.include_router(models.router)
    app.include_router(webhooks.router)
    app.include_router(admin.router)
    app.include_router(metrics.router)
    app.include_router(dashboard.router)
    app.include_router(dashboard_cancel.router)
    app.include_router(dashboard_reviews.router)
    install_error_handlers(app)
    document_models_of_raw_bodies(app)

    @app.get("/healthz", tags=["health"])
    def healthz() -> JSONResponse:
        """200 when Postgres and Redis answer; 503 saying which does not."""
        services = backing_service_status(app)
        up = all(state == "ok" for state in services.values())
        return JSONResponse(
            {"status": "ok" if up else "unavailable", **services}, status_code=200 if up else 503
        )

    return app


def document_models_of_raw_bodies(app: FastAPI) -> None:
    """Put BatchCreate (and the models it uses) into the OpenAPI components: POST /v1/batches
    reads its body by hand, JSON or multipart, so FastAPI never lists the model its doc names."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = default_openapi()  # cached by FastAPI as app.openapi_schema: completed once
        body = BatchCreate.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema["components"]["schemas"]
        for name, definition in body.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components.setdefault("BatchCreate", body)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def backing_service_status(app: FastAPI) -> dict[str, str]:
    """ "ok" or "unavailable" for the database and for the queue."""
    status = {"database": "ok", "queue": "ok"}
    try:
        with app.state.session_factory() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        status["database"] = "unavailable"
    try:
        app.state.redis.ping()
    except RedisError:
        status["queue"] = "unavailable"
    return status


def install_error_handlers(app: FastAPI) -> None:
    """Domain errors to their status; validation errors name the field; database and queue
    failures are 503 with Retry-After (a value Postgres refuses is 422, a write that met
    another 409), logged here since the caller is told nothing of them."""

    @app.exception_handler(FindapError)
    async def domain_error(_: Request, error: FindapError) -> JSONResponse:
        headers = None
        if isinstance(error, UnauthorizedError):
            headers = {"WWW-Authenticate": "Bearer"}
        elif isinstance(error, TooManyRequestsError):
            headers = {"Retry-After": str(error.retry_after_s)}
        elif isinstance(error, ServiceUnavailableError):
            headers = {"Retry-After": str(RETRY_AFTER_S)}
        return JSONResponse(
            {"detail": error.detail},
            status_code=ERROR_STATUS.get(type(error), 400),
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        body_field = getattr(request.scope.get("route"), "body_field", None)
        body_model = None if body_field is None else body_field.field_info.annotation
        problems = []
        for item in error.errors():
            location = [str(part) for part in item["loc"] if part not in ("body", "query", "path")]
            if not location and item["type"] == "value_error":
                # A check of the whole body names its own field: `data: name at least one …`.
                problems.append(item["msg"].removeprefix("Value error, "))
                continue
            hint = ""
            if item["loc"][:1] == ("body",):
                hint = unknown_field_hint({**item, "loc": item["loc"][1:]}, body_model)
            problems.append(f"{'.'.join(location) or 'body'}: {item['msg']}{hint}")
        return JSONResponse({"detail": "; ".join(problems)}, status_code=422)

    @app.exception_handler(DataError)
    async def unstorable_value(request: Request, error: DataError) -> JSONResponse:
        # Postgres refused a value the request carried (a NUL character in an id or a name,
        # a number out of range): the caller's input, not an outage and not a server fault.
        reason = first_line(error.orig) if error.orig is not None else "invalid value"
        log.info("%s %s: value refused by the database: %s", *route_of(request), reason)
        return JSONResponse({"detail": f"request: a value cannot be stored ({reason})"}, 422)

    @app.exception_handler(IntegrityError)
    async def conflicting_write(request: Request, error: IntegrityError) -> JSONResponse:
        # A write that met another one (a row deleted or added meanwhile): the state changed
        # under the request, which may succeed when sent again.
        log.warning("%s %s: %s", *route_of(request), first_line(error.orig or error))
        return JSONResponse(
            {"detail": "request: it conflicts with a change made meanwhile; retry it"}, 409
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def database_down(request: Request, error: DBAPIError) -> JSONResponse:
        # Postgres is down or restarting (the pool reconnects by itself once it is back), or
        # it broke a deadlock or a serialization conflict by failing this transaction.
        log.warning(
            "%s %s: database unavailable: %s", *route_of(request), first_line(error.orig or error)
        )
        return retry_later("database unavailable, retry shortly")

    @app.exception_handler(SQLAlchemyTimeoutError)
    async def pool_exhausted(request: Request, _: SQLAlchemyTimeoutError) -> JSONResponse:
        log.warning(
            "%s %s: no database connection free within %s s (DB_POOL_TIMEOUT_S)",
            *route_of(request),
            request.app.state.settings.db_pool_timeout_s,
        )
        return retry_later("database busy, retry shortly")

    @app.exception_handler(SQLAlchemyError)
    async def database_error(request: Request, error: SQLAlchemyError) -> JSONResponse:
        # Any other database failure: logged whole here, never shown to the caller.
        log.error("%s %s: database error", *route_of(request), exc_info=error)
        return retry_later("database error, retry shortly")

    @app.exception_handler(RedisError)
    async def redis_down(request: Request, error: RedisError) -> JSONResponse:
        log.warning("%s %s: queue unavailable: %s", *route_of(request), first_line(error))
        return retry_later("queue unavailable, retry shortly")


RETRY_AFTER_S = 5


def retry_later(detail: str) -> JSONResponse:
    """503 with Retry-After: an outage of a backing service, not the caller's fault."""
    return JSONResponse(
        {"detail": detail}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
    )


def route_of(request: Request) -> tuple[str, str]:
    """Method and path, for a log line about a request that failed."""
    return request.method, request.url.path


def app_from_environment() -> FastAPI:
    """Factory for `uvicorn --factory app.main:app_from_environment`."""
    return create_app()


def __getattr__(name: str) -> FastAPI:
    # `uvicorn app.main:app` builds the app from the environment on first access only,
    # so importing this module (tests, CLI) needs no DATABASE_URL.
    if name == "app":
        return create_app()
    raise AttributeError(name)
