"""The Prometheus collector of /metrics: at each scrape it reads queue depths and the workers'
and trainers' figures from Redis, and counts of chunks, batches and training jobs from Postgres."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from enum import StrEnum

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from rq import Queue
from rq.utils import as_text
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from app.kernel import metrics_store as store
from app.kernel.metrics_store import MetricsStore, Series
from app.kernel.models import Batch, Chunk, TrainingJob
from app.kernel.models.statuses import BatchStatus, ChunkStage, RunStatus
from app.kernel.queue import training_queue_name

PREFIX = "findap_"


class FindapCollector(Collector):
    """Everything /metrics shows, read fresh at every scrape."""

    def __init__(
        self, metrics: MetricsStore, session_factory: sessionmaker[Session], prefix: str
    ) -> None:
        self.metrics = metrics
        self.session_factory = session_factory
        self.prefix = prefix

    def collect(self) -> Iterator[Metric]:
        yield self.queue_depth()
        yield from self.database_counts()
        yield counter(self.metrics, store.TOKENS, "Tokens models read (prompt) and wrote.")
        yield self.tokens_per_second()
        yield counter(self.metrics, store.JUDGE_REPLIES, "Judge replies, retries included.")
        yield counter(
            self.metrics, store.JUDGE_UNPARSEABLE, "Judge replies that did not parse as asked."
        )
        yield self.judge_unparseable_ratio()
        yield counter(self.metrics, store.VERDICTS, "Stored verdicts by outcome.")
        yield counter(
            self.metrics, store.CHUNK_STAGE_RUNS, "Runs of a chunk's stage by how they ended."
        )
        yield histogram(
            self.metrics,
            store.CHUNK_STAGE_SECONDS,
            "Seconds a chunk's stage took, claim to end, for runs that completed it.",
        )
        yield histogram(
            self.metrics, store.TRAINING_STEP_SECONDS, "Seconds per optimizer step of training."
        )

    def queue_depth(self) -> GaugeMetricFamily:
        """Jobs waiting in each of findap's RQ queues (the training queue always shown)."""
        redis = self.metrics.redis
        namespace = Queue.redis_queue_namespace_prefix
        names = {training_queue_name(self.prefix)}
        for key in redis.smembers(Queue.redis_queues_keys):
            name = as_text(key).removeprefix(namespace)
            if name.startswith(f"{self.prefix}:"):
                names.add(name)
        ordered = sorted(names)
        with redis.pipeline(transaction=False) as pipe:
            for name in ordered:
                pipe.llen(f"{namespace}{name}")
            depths = pipe.execute()
        family = GaugeMetricFamily(
            f"{PREFIX}queue_depth", "Jobs waiting in an RQ queue.", labels=["queue"]
        )
        for name, depth in zip(ordered, depths, strict=True):
            family.add_metric([name], depth)
        return family

    def database_counts(self) -> Iterator[Metric]:
        """Chunks in flight, batches and training jobs by status, last step time of running jobs."""
        with self.session_factory() as session:
            in_flight = count_by(session, Chunk.stage, Chunk.status == RunStatus.RUNNING)
            batches = count_by(session, Batch.status)
            jobs = count_by(session, TrainingJob.status)
            running_jobs: dict[str, str] = {
                job_id: method
                for job_id, method in session.execute(
                    select(TrainingJob.id, TrainingJob.method).where(
                        TrainingJob.status == RunStatus.RUNNING
                    )
                )
            }
        yield by_status(
            "chunks_in_flight",
            "Chunks being sampled or judged now.",
            "stage",
            ChunkStage,
            in_flight,
        )
        yield by_status("batches", "Batches by status.", "status", BatchStatus, batches)
        yield by_status("training_jobs", "Training jobs by status.", "status", RunStatus, jobs)
        last_step = GaugeMetricFamily(
            f"{PREFIX}training_last_step_seconds",
            "Seconds the last optimizer step of a running training job took.",
            labels=["job_id", "method"],
        )
        latest = self.metrics.latest(store.TRAINING_LAST_STEP, [(id,) for id in running_jobs])
        for (job_id,), seconds in sorted(latest.items()):
            last_step.add_metric([job_id, running_jobs[job_id]], seconds)
        yield last_step

    def tokens_per_second(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            f"{PREFIX}tokens_per_second",
            f"Tokens a model generated per second over the last {store.WINDOW_S} s, all workers.",
            labels=list(store.GENERATED_TOKENS.labels),
        )
        for labels, rate in sorted(self.metrics.recent_rates(store.GENERATED_TOKENS).items()):
            family.add_metric(list(labels), rate)
        return family

    def judge_unparseable_ratio(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            f"{PREFIX}judge_unparseable_ratio",
            f"Share of judge replies that did not parse, over the last {store.WINDOW_S} s "
            "(absent when the judge gave no reply in that time).",
            labels=list(store.JUDGE_REPLIES.labels),
        )
        now = time.time()  # one window for both, so the share is exact
        replies = self.metrics.recent_rates(store.JUDGE_REPLIES, now)
        unparseable = self.metrics.recent_rates(store.JUDGE_UNPARSEABLE, now)
        for labels, rate in sorted(replies.items()):
            if rate > 0:
                family.add_metric(list(labels), unparseable.get(labels, 0.0) / rate)
        return family


def count_by(
    session: Session, column: InstrumentedAttribute[str], *where: ColumnElement[bool]
) -> dict[str, int]:
    """Rows per value of a column, among those matching `where`."""
    query = select(column, func.count()).where(*where).group_by(column)
    return {value: count for value, count in session.execute(query)}


def by_status(
    name: str, documentation: str, label: str, values: Iterable[StrEnum], counts: dict[str, int]
) -> GaugeMetricFamily:
    """A gauge with one sample per enum value, zero for values nothing has."""
    family = GaugeMetricFamily(f"{PREFIX}{name}", documentation, labels=[label])
    for value in values:
        family.add_metric([value.value], counts.get(value.value, 0))
    return family


def counter(metrics: MetricsStore, series: Series, documentation: str) -> CounterMetricFamily:
    family = CounterMetricFamily(f"{PREFIX}{series.name}", documentation, labels=series.labels)
    for labels, total in sorted(metrics.counters(series).items()):
        family.add_metric(list(labels), total)
    return family


def histogram(metrics: MetricsStore, series: Series, documentation: str) -> HistogramMetricFamily:
    family = HistogramMetricFamily(f"{PREFIX}{series.name}", documentation, labels=series.labels)
    bounds = [*(str(float(bound)) for bound in series.buckets), "+Inf"]
    for labels, counts in sorted(metrics.histograms(series).items()):
        cumulative, buckets = 0.0, []
        for bound, count in zip(bounds, counts.buckets, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        family.add_metric(list(labels), buckets, counts.sum)
    return family
