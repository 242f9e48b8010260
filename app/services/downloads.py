"""A project's downloads in flight, capped: a slot per download in a Redis sorted set.

Each member is one download, scored with the time its lease runs out; the download renews the
lease while it streams and removes it when it ends. An API process that dies mid-download stops
renewing, so its slots lapse after LEASE_S instead of counting against the project for ever."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field

from redis import Redis
from redis.exceptions import RedisError

from app.kernel.errors import TooManyRequestsError

log = logging.getLogger(__name__)

LEASE_S = 120.0
"""How long a download's slot lasts without renewal."""
RETRY_AFTER_S = 5

# Atomic: drop lapsed slots, then take one if fewer than the limit are held.
_TAKE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def slots_key(queue_prefix: str, project_id: str) -> str:
    return f"{queue_prefix}:downloads:{project_id}"


@dataclass
class DownloadSlot:
    """One download's place among its project's; renew it while streaming, release it after."""

    redis: Redis
    key: str
    lease_s: float = LEASE_S
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    renewed_at: float = field(default_factory=time.monotonic)

    def renewal_due(self) -> bool:
        """A sixth of the lease has gone by since it was last renewed."""
        return time.monotonic() - self.renewed_at >= self.lease_s / 6

    def renew(self) -> None:
        """Extend the lease; a Redis that does not answer leaves the download streaming (its
        slot may then lapse: the cap is loose for a while, no download is cut off)."""
        self.renewed_at = time.monotonic()
        try:
            self.redis.zadd(self.key, {self.token: time.time() + self.lease_s}, xx=True)
            self.redis.expire(self.key, int(self.lease_s) + 1)
        except RedisError as error:
            log.warning("download slot %s not renewed: %s", self.token, error)

    def release(self) -> None:
        """Give the slot back; if Redis does not answer, it lapses with its lease."""
        try:
            self.redis.zrem(self.key, self.token)
        except RedisError as error:
            log.warning("download slot %s not released: %s", self.token, error)


def take_download_slot(
    redis: Redis, *, queue_prefix: str, project_id: str, limit: int, lease_s: float = LEASE_S
) -> DownloadSlot:
    """A slot for one more download of this project, or TooManyRequestsError at the limit."""
    slot = DownloadSlot(redis, slots_key(queue_prefix, project_id), lease_s)
    now = time.time()
    taken = redis.register_script(_TAKE_SLOT)(
        keys=[slot.key], args=[now, now + lease_s, limit, slot.token, int(lease_s) + 1]
    )
    if not taken:
        raise TooManyRequestsError(
            f"downloads: this project already has {limit} downloads streaming, the most it may "
            f"have at once (DOWNLOADS_PER_PROJECT={limit}); retry when one of them ends",
            retry_after_s=RETRY_AFTER_S,
        )
    return slot
