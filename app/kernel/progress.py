"""Progress inside running chunks: what a worker's stage has done since it began and the
batch's stored counts do not show yet (tokens as they decode, answers generated or judged
before they are stored), kept in Redis by the worker and read by the batch summary. Losing it
loses nothing but the figure: Postgres holds the work."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from redis import Redis

PROGRESS_TTL_S = 3600
"""A batch's progress hash outlives its last write this long (a worker killed mid-chunk leaves
its entry until the chunk's next run overwrites it, or the hash expires)."""


def progress_key(prefix: str, batch_id: str) -> str:
    """The Redis hash of a batch's running chunks: chunk id -> JSON figures."""
    return f"{prefix}:progress:{batch_id}"


@dataclass(frozen=True)
class ChunkFigures:
    """What one running stage of a chunk reported last."""

    prompts: int
    fraction: float
    """How far the chunk's work has come, 0 to 1 (decoding steps of the current model call,
    over the calls a chunk makes: sample, then judge and analyse)."""
    tokens: int
    samples: int
    judged: int
    started_at: float
    updated_at: float

    def as_json(self) -> str:
        return json.dumps(self.__dict__)


def read_progress(redis: Redis, prefix: str, batch_id: str) -> list[ChunkFigures]:
    """The figures of a batch's running chunks, in one round trip; none when Redis is down."""
    from redis.exceptions import RedisError

    try:
        entries: dict[Any, Any] = redis.hgetall(progress_key(prefix, batch_id))  # type: ignore[assignment]
    except RedisError:
        return []
    found = []
    for value in entries.values():
        try:
            found.append(ChunkFigures(**json.loads(value)))
        except (ValueError, TypeError):
            continue  # written by another version: only a figure is lost
    return found


def rate(figures: ChunkFigures) -> float:
    """Tokens per second of one chunk's stage so far."""
    elapsed = figures.updated_at - figures.started_at
    return figures.tokens / elapsed if elapsed > 0 else 0.0


def summed(figures: list[ChunkFigures], now: float | None = None) -> dict[str, Any] | None:
    """The batch-level figures of its running chunks (the API's `progress`), or None."""
    if not figures:
        return None
    now = time.time() if now is None else now
    return {
        "running_chunks": len(figures),
        "chunks_fraction": round(sum(f.fraction for f in figures), 4),
        "prompts_fraction": round(sum(f.fraction * f.prompts for f in figures), 2),
        "samples_generated": sum(f.samples for f in figures),
        "samples_judged": sum(f.judged for f in figures),
        "tokens_generated": sum(f.tokens for f in figures),
        "tokens_per_s": round(sum(rate(f) for f in figures), 1),
        "elapsed_s": round(max(now - f.started_at for f in figures), 1),
    }
