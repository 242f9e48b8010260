"""The figures workers and trainers keep in Redis for the API's /metrics to read at scrape time.

Workers and trainers run apart from the API (other processes, often other machines) and share
only Redis and Postgres with it, so they add their figures to Redis instead of to a registry of
their own. Every figure lives under `<QUEUE_NAME>:metrics:`; within a hash, a field is one
series, named by its label values as a JSON list:

- counters: hash `…:metrics:<name>`, field `[labels…]`, the running total;
- histograms: hash `…:metrics:<name>`, fields `[labels…, "<bucket index>"]` (observations in that
  bucket; the index past the last bound is +Inf) and `[labels…, "sum"]`;
- recent figures: hash `…:metrics:recent:<name>:<slot>`, one per `SLOT_S` seconds, expiring after
  two windows: what was added in that slot, for rates over the last `WINDOW_S` seconds;
- latest values: plain key `…:metrics:<name>:<labels…>` with an expiry.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

SLOT_S = 5
"""Width of one slot of the recent figures."""
WINDOW_S = 60
"""The trailing window of the rates (tokens/s, the judge's unparseable share)."""

Labels = tuple[str, ...]


@dataclass(frozen=True)
class Series:
    """A figure kept in Redis: its key name, its label names in order, and (histograms) bounds."""

    name: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()


TOKENS = Series("tokens", ("engine", "model", "role", "kind"))
"""Tokens a model read (kind prompt) and wrote (kind completion), as policy or as judge."""
GENERATED_TOKENS = Series("generated_tokens", ("engine", "model", "role"))
"""Recent: completion tokens, spread over the model call that made them."""
JUDGE_REPLIES = Series("judge_replies", ("engine", "model", "kind"))
"""Every judge reply, retries included; also kept as a recent figure."""
JUDGE_UNPARSEABLE = Series("judge_unparseable_replies", ("engine", "model", "kind"))
"""Judge replies that did not parse (each retry is a reply); also kept as a recent figure."""
VERDICTS = Series("verdicts", ("engine", "model", "kind", "outcome"))
"""Stored verdicts by outcome: parsed, no_step_error (SCP), unparseable (after every retry),
failed_validation."""
CHUNK_STAGE_RUNS = Series("chunk_stage_runs", ("stage", "engine", "model", "outcome"))
"""Runs of a chunk's stage by how they ended: succeeded, sampled, lost, error."""
CHUNK_STAGE_SECONDS = Series(
    "chunk_stage_seconds",
    ("stage", "engine", "model"),
    (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600),
)
"""Seconds from claiming a chunk's stage to its end, for runs that completed the stage."""
TRAINING_STEP_SECONDS = Series(
    "training_step_seconds", (), (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
)
"""Seconds per optimizer step of every training job."""
TRAINING_LAST_STEP = Series("training_last_step_seconds", ("job_id",))
"""Latest: the last optimizer step's seconds of a job (expires an hour after the step)."""
HTTP_REQUESTS = Series("http_requests", ("method", "route", "status"))
"""API requests answered, by method, route template (never the raw path) and status code."""
HTTP_REQUEST_SECONDS = Series(
    "http_request_seconds",
    ("method", "route"),
    (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
"""Seconds from a request's arrival to the last byte of its answer, by method and route."""

LATEST_TTL_S = 3600


def field_name(labels: Labels, *part: str) -> str:
    return json.dumps([*labels, *part])


def bucket_index(bounds: tuple[float, ...], value: float) -> int:
    """The first bucket whose upper bound holds the value; len(bounds) for +Inf."""
    return next((index for index, bound in enumerate(bounds) if value <= bound), len(bounds))


@dataclass
class Figures:
    """Additions to the Redis figures, gathered while work runs and written in one round trip."""

    increments: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    """(key suffix, field) -> amount."""
    latest: dict[str, float] = field(default_factory=dict)
    """key suffix -> value."""

    def count(self, series: Series, labels: Labels, amount: float = 1) -> None:
        self.increments[(series.name, field_name(labels))] += amount

    def observe(self, series: Series, labels: Labels, value: float) -> None:
        index = bucket_index(series.buckets, value)
        self.increments[(series.name, field_name(labels, str(index)))] += 1
        self.increments[(series.name, field_name(labels, "sum"))] += value

    def count_recent(
        self, series: Series, labels: Labels, amount: float, *, start: float, end: float
    ) -> None:
        """Add an amount made between two wall-clock times, spread evenly over their slots."""
        if end - start < 1e-6:
            start = end
        first = max(int(start // SLOT_S), int((end - WINDOW_S) // SLOT_S))
        for slot in range(first, int(end // SLOT_S) + 1):
            overlap = min(end, (slot + 1) * SLOT_S) - max(start, slot * SLOT_S)
            share = 1.0 if end == start else max(overlap, 0.0) / (end - start)
            if share > 0:
                self.increments[(f"recent:{series.name}:{slot}", field_name(labels))] += (
                    amount * share
                )

    def set_latest(self, series: Series, labels: Labels, value: float) -> None:
        self.latest[latest_key(series, labels)] = value

    def __bool__(self) -> bool:
        return bool(self.increments or self.latest)


def latest_key(series: Series, labels: Labels) -> str:
    return ":".join((series.name, *labels))


@dataclass
class HistogramCounts:
    """Observations per bucket (not cumulative; the last is +Inf) and their sum."""

    buckets: list[float]
    sum: float


class MetricsStore:
    """The figures under one queue prefix: workers and trainers add, the API reads."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:metrics"

    def add(self, figures: Figures) -> None:
        """Write the figures in one pipelined round trip; a Redis outage only loses them."""
        if not figures:
            return
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for (suffix, name), amount in figures.increments.items():
                    key = f"{self.prefix}:{suffix}"
                    pipe.hincrbyfloat(key, name, amount)
                    if suffix.startswith("recent:"):
                        pipe.expire(key, 2 * WINDOW_S)
                for suffix, value in figures.latest.items():
                    pipe.set(f"{self.prefix}:{suffix}", value, ex=LATEST_TTL_S)
                pipe.execute()
        except RedisError as error:
            log.warning("metrics not recorded (Redis: %s)", error)

    def counters(self, series: Series) -> dict[Labels, float]:
        """The running totals of a counter, by label values."""
        raw = self.redis.hgetall(f"{self.prefix}:{series.name}")
        return {tuple(json.loads(name)): float(value) for name, value in raw.items()}

    def histograms(self, series: Series) -> dict[Labels, HistogramCounts]:
        """A histogram's bucket counts and sums, by label values."""
        raw = self.redis.hgetall(f"{self.prefix}:{series.name}")
        found: dict[Labels, HistogramCounts] = {}
        for name, value in raw.items():
            *labels, part = json.loads(name)
            counts = found.setdefault(
                tuple(labels), HistogramCounts([0.0] * (len(series.buckets) + 1), 0.0)
            )
            if part == "sum":
                counts.sum = float(value)
            else:
                counts.buckets[int(part)] = float(value)
        return found

    def recent_rates(self, series: Series, now: float | None = None) -> dict[Labels, float]:
        """Per-second rates of a recent figure over about the last WINDOW_S seconds."""
        now = time.time() if now is None else now
        first = math.floor((now - WINDOW_S) / SLOT_S) + 1
        slots = range(first, math.floor(now / SLOT_S) + 1)
        with self.redis.pipeline(transaction=False) as pipe:
            for slot in slots:
                pipe.hgetall(f"{self.prefix}:recent:{series.name}:{slot}")
            replies = pipe.execute()
        totals: dict[Labels, float] = defaultdict(float)
        for raw in replies:
            for name, value in raw.items():
                totals[tuple(json.loads(name))] += float(value)
        span = now - first * SLOT_S
        return {labels: total / span for labels, total in totals.items()}

    def latest(self, series: Series, label_sets: list[Labels]) -> dict[Labels, float]:
        """The unexpired latest values of these label sets."""
        if not label_sets:
            return {}
        keys = [f"{self.prefix}:{latest_key(series, labels)}" for labels in label_sets]
        values = self.redis.mget(keys)
        return {
            labels: float(value)
            for labels, value in zip(label_sets, values, strict=True)
            if value is not None
        }
