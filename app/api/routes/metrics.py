"""GET /metrics for Prometheus: queues, chunks in flight, tokens/s, judge parse failures, chunk
latency, training step time, API requests; only for the METRICS_TOKEN Bearer token, off while
it is unset."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from app.api.deps import RedisDep, SessionFactoryDep, SettingsDep
from app.kernel.errors import ForbiddenError, UnauthorizedError
from app.kernel.metrics_store import MetricsStore
from app.services.metrics import FindapCollector

_metrics_bearer = HTTPBearer(
    auto_error=False, scheme_name="MetricsToken", description="The METRICS_TOKEN setting."
)


def require_metrics_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_metrics_bearer)],
) -> None:
    """403 while METRICS_TOKEN is unset (metrics are off); else 401 without a token and 403
    with a wrong one."""
    if settings.metrics_token is None:
        raise ForbiddenError(
            "metrics are off: set METRICS_TOKEN on the API to turn them on "
            "(findap up makes one and prints it)"
        )
    if credentials is None:
        raise UnauthorizedError("missing metrics token: send Authorization: Bearer <METRICS_TOKEN>")
    if not secrets.compare_digest(
        credentials.credentials.encode(), settings.metrics_token.get_secret_value().encode()
    ):
        raise ForbiddenError("wrong metrics token")


router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(require_metrics_token)])
def metrics(
    request: Request, settings: SettingsDep, redis: RedisDep, session_factory: SessionFactoryDep
) -> Response:
    """The Prometheus text exposition of everything FindapCollector reads."""
    store = MetricsStore(redis, settings.queue_name)
    # This process's requests so far, at once; other API processes' within FLUSH_INTERVAL_S.
    request.app.state.request_meter.flush(store)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FindapCollector(store, session_factory, settings.queue_name))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
