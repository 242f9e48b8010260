"""Standard Webhooks (https://www.standardwebhooks.com): the events findap sends, the secrets
that sign them, and the signature every delivery carries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

WEBHOOK_EVENTS = (
    "batch.completed",
    "batch.failed",
    "batch.cancelled",
    "training_job.succeeded",
    "training_job.failed",
    "training_job.cancelled",
    "evaluation.completed",
    "evaluation.failed",
)
"""Every event type; the outbox trigger of migration 0015_webhooks makes exactly these."""

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
"""The spec asks for 24 to 64 random bytes."""


def new_secret() -> str:
    """A signing secret as the spec writes them: whsec_ and the base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The webhook-signature header: `v1,` and the base64 HMAC-SHA256, keyed with the secret's
    decoded bytes, of `{webhook-id}.{webhook-timestamp}.{body}`."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.{body}".encode()
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, message_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The headers of one attempt: the same webhook-id on every retry, a fresh timestamp."""
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }
