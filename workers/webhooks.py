"""`findap webhooks`: sends the outbox. Claims due deliveries (FOR UPDATE SKIP LOCKED, so
any number of senders share the work), POSTs each signed per Standard Webhooks, logs the
attempt, and retries on WEBHOOK_RETRY_DELAYS_S until the last, then fails it.

A claim moves the delivery's next attempt past the send's timeout instead of holding a row
lock over the network: a sender killed mid-send leaves a delivery that another (or the same,
restarted) sender takes when the claim runs out. At-least-once: the same webhook-id each time."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.kernel.config import Settings
from app.kernel.context import ProcessContext
from app.kernel.db.base import utcnow
from app.kernel.errors import InvalidInputError
from app.kernel.models.webhook import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.kernel.webhook_urls import IpAddress, check_webhook_url
from app.kernel.webhooks import signed_headers

log = logging.getLogger(__name__)

CLAIM_MARGIN_S = 5.0
"""A claim outlasts the send's timeout by this much before another sender may take it."""
PRUNE_EVERY_S = 3600.0
"""How often a sender deletes deliveries older than WEBHOOK_LOG_DAYS."""
PRUNE_BATCH = 1000
"""Deliveries deleted per statement: short transactions, however large the backlog."""


@dataclass(frozen=True)
class Claimed:
    """A delivery taken for one send, with what the send needs."""

    id: str
    body: str
    attempts: int
    url: str
    secret: str


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def claim_due(session: Session, *, now: datetime, claim_s: float) -> Claimed | None:
    """The oldest due pending delivery not locked by another sender, claimed for claim_s."""
    row = session.execute(
        select(WebhookDelivery, WebhookEndpoint.url, WebhookEndpoint.secret)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(1)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
    ).first()
    if row is None:
        return None
    delivery, url, secret = row
    delivery.next_attempt_at = now + timedelta(seconds=claim_s)
    return Claimed(delivery.id, delivery.body, delivery.attempts, url, secret)


def send(claimed: Claimed, settings: Settings) -> Outcome:
    """One signed POST; its answer, or why there was none."""
    started = time.monotonic()
    try:
        # Again at send time: what the name resolves to may have changed since it was checked.
        addresses = check_webhook_url(
            claimed.url, allow_private=settings.webhooks_allow_private_urls
        )
        url, host_headers, extensions = pinned(claimed.url, addresses)
        headers = signed_headers(claimed.secret, claimed.id, int(time.time()), claimed.body)
        with httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False) as client:
            request = client.build_request(
                "POST",
                url,
                content=claimed.body.encode(),
                headers={**headers, **host_headers},
                extensions=extensions,
            )
            # Streamed and closed unread: only the status matters, whatever size the body.
            response = client.send(request, stream=True)
            status_code = response.status_code
            response.close()
    except InvalidInputError as refused:
        return Outcome(None, refused.detail, elapsed_ms(started))
    except httpx.HTTPError as problem:
        return Outcome(None, f"{type(problem).__name__}: {problem}"[:2000], elapsed_ms(started))
    answer = None if 200 <= status_code < 300 else f"HTTP {status_code}"
    return Outcome(status_code, answer, elapsed_ms(started))


def pinned(
    url: str, addresses: list[IpAddress]
) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
    """The request to connect to the first checked address, not to what the name resolves to a
    moment later (a rebinding name could turn private in between): the URL with that address,
    the name kept for the Host header and for TLS (SNI and the certificate's check). Unchanged
    when nothing was checked (private addresses allowed)."""
    parsed = httpx.URL(url)
    if not addresses:
        return parsed, {}, {}
    return (
        parsed.copy_with(host=str(addresses[0])),
        {"host": parsed.netloc.decode("ascii")},
        {"sni_hostname": parsed.host},
    )


def elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def record_attempt(
    session: Session, claimed: Claimed, outcome: Outcome, *, retry_delays_s: list[float]
) -> None:
    """Log the attempt; the delivery is delivered, due again after its next delay, or failed
    once the delays are spent. A delivery gone meanwhile (its endpoint deleted) is left gone."""
    delivery = session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.id == claimed.id).with_for_update()
    ).first()
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return
    now = utcnow()
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            attempted_at=now,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
        )
    )
    delivery.attempts += 1
    if outcome.delivered:
        delivery.status = DeliveryStatus.DELIVERED
    elif delivery.attempts > len(retry_delays_s):
        delivery.status = DeliveryStatus.FAILED
    else:
        delivery.next_attempt_at = now + timedelta(seconds=retry_delays_s[delivery.attempts - 1])
        return
    delivery.next_attempt_at = None
    delivery.finished_at = now


def deliver_one(context: ProcessContext) -> bool:
    """Claim, send and record one due delivery; False when none is due."""
    settings = context.settings
    claimed = context.transaction(
        lambda session: claim_due(
            session, now=utcnow(), claim_s=settings.webhook_timeout_s + CLAIM_MARGIN_S
        )
    )
    if claimed is None:
        return False
    outcome = send(claimed, settings)
    log.info("webhook %s to %s: %s", claimed.id, claimed.url, outcome.error or "delivered")
    context.transaction(
        lambda session: record_attempt(
            session, claimed, outcome, retry_delays_s=settings.webhook_retry_delays_s
        )
    )
    return True


def deliver_due(context: ProcessContext) -> int:
    """Send every delivery due now; how many were tried."""
    sent = 0
    while deliver_one(context):
        sent += 1
    return sent


def prune_delivery_log(context: ProcessContext, *, older_than: timedelta) -> int:
    """Delete the deliveries (and, by cascade, their attempts) that ended longer ago than
    `older_than`, PRUNE_BATCH per transaction; pending ones stay. How many were deleted."""
    before = utcnow() - older_than
    deleted = 0
    while True:
        count = context.transaction(lambda session: delete_ended(session, before=before))
        deleted += count
        if count < PRUNE_BATCH:
            return deleted


def delete_ended(session: Session, *, before: datetime) -> int:
    """Up to PRUNE_BATCH deliveries that ended before `before`, deleted; how many."""
    ended = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.finished_at < before)
        .limit(PRUNE_BATCH)
        .scalar_subquery()
    )
    result = session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(ended)))
    return int(result.rowcount)  # type: ignore[attr-defined]


def run_webhook_sender(settings: Settings, *, once: bool = False) -> int:
    """`findap webhooks`: send what is due every WEBHOOK_POLL_INTERVAL_S until stopped (once:
    one pass), and once an hour drop what the delivery log keeps no longer (WEBHOOK_LOG_DAYS).
    Returns how many deliveries were tried."""
    tried = 0
    pruned_at = -PRUNE_EVERY_S
    with ProcessContext.open(settings) as context:
        while True:
            try:
                if time.monotonic() - pruned_at >= PRUNE_EVERY_S:
                    prune_delivery_log(
                        context, older_than=timedelta(days=settings.webhook_log_days)
                    )
                    pruned_at = time.monotonic()
                tried += deliver_due(context)
            except SQLAlchemyError as error:
                log.warning("webhooks: database unavailable (%s); the next pass retries", error)
            if once:
                return tried
            time.sleep(settings.webhook_poll_interval_s)
