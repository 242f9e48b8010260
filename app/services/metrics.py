"""The Prometheus collector of /metrics: at each scrape it reads queue depths and the workers'
and trainers' figures from Redis, and counts of chunks, batches and training jobs from Postgres.

It shows no project's ids: a project's trained model appears as the model `trained` (in queue
names too), and training jobs only by method."""

from __future__ import annotations

import time
from collections import defaultdict
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
from app.kernel.metrics_store import HistogramCounts, Labels, MetricsStore, Series
from app.kernel.models import Batch, Chunk, TrainedModel, TrainingJob
from app.kernel.models.statuses import BatchKind, BatchStatus, ChunkStage, RunStatus
from app.kernel.queue import training_queue_name

PREFIX = "findap_"
TRAINED = "trained"
"""What /metrics calls every project's trained model, so no model id of a project shows."""


class FindapCollector(Collector):
    """Everything /metrics shows, read fresh at every scrape."""

    def __init__(
        self, metrics: MetricsStore, session_factory: sessionmaker[Session], prefix: str
    ) -> None:
        self.metrics = metrics
        self.session_factory = session_factory
        self.prefix = prefix

    def collect(self) -> Iterator[Metric]:
        with self.session_factory() as session:
            trained = set(session.scalars(select(TrainedModel.id)))
        public = PublicLabels(trained)
        yield self.queue_depth(trained)
        yield from self.database_counts()
        yield counter(self.metrics, store.TOKENS, "Tokens models read (prompt) and wrote.", public)
        yield self.tokens_per_second(public)
        yield counter(self.metrics, store.JUDGE_REPLIES, "Judge replies, retries included.", public)
        yield counter(
            self.metrics,
            store.JUDGE_UNPARSEABLE,
            "Judge replies that did not parse as asked.",
            public,
        )
        yield self.judge_unparseable_ratio(public)
        yield counter(self.metrics, store.VERDICTS, "Stored verdicts by outcome.", public)
        yield counter(
            self.metrics,
            store.CHUNK_STAGE_RUNS,
            "Runs of a chunk's stage by how they ended.",
            public,
        )
        yield histogram(
            self.metrics,
            store.CHUNK_STAGE_SECONDS,
            "Seconds a chunk's stage took, claim to end, for runs that completed it.",
            public,
        )
        yield histogram(
            self.metrics,
            store.TRAINING_STEP_SECONDS,
            "Seconds per optimizer step of training.",
            public,
        )
        yield counter(
            self.metrics,
            store.HTTP_REQUESTS,
            "API requests answered, by method, route template and status code.",
            public,
        )
        yield histogram(
            self.metrics,
            store.HTTP_REQUEST_SECONDS,
            "Seconds from an API request's arrival to the last byte of its answer.",
            public,
        )

    def queue_depth(self, trained: set[str]) -> GaugeMetricFamily:
        """Jobs waiting in each of findap's RQ queues (the training queue always shown); the
        queues of trained models together, as `<prefix>:<stage>:<engine>:trained`."""
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
        shown: dict[str, float] = defaultdict(float)
        for name, depth in zip(ordered, depths, strict=True):
            shown[public_queue_name(name, self.prefix, trained)] += depth
        for name, depth in shown.items():
            family.add_metric([name], depth)
        return family

    def database_counts(self) -> Iterator[Metric]:
        """Chunks in flight, batches and training jobs by status, last step time of running jobs."""
        with self.session_factory() as session:
            in_flight = count_by(session, Chunk.stage, Chunk.status == RunStatus.RUNNING)
            batches = count_by(session, Batch.status, Batch.kind == BatchKind.BATCH)
            evaluations = count_by(session, Batch.status, Batch.kind == BatchKind.EVALUATION)
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
        yield by_status("evaluations", "Evaluations by status.", "status", BatchStatus, evaluations)
        yield by_status("training_jobs", "Training jobs by status.", "status", RunStatus, jobs)
        last_step = GaugeMetricFamily(
            f"{PREFIX}training_last_step_seconds",
            "Seconds the last optimizer step took, of the slowest running job of each method.",
            labels=["method"],
        )
        latest = self.metrics.latest(store.TRAINING_LAST_STEP, [(id,) for id in running_jobs])
        slowest: dict[str, float] = {}
        for (job_id,), seconds in latest.items():
            method = running_jobs[job_id]
            slowest[method] = max(seconds, slowest.get(method, 0.0))
        for method, seconds in sorted(slowest.items()):
            last_step.add_metric([method], seconds)
        yield last_step

    def tokens_per_second(self, public: PublicLabels) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            f"{PREFIX}tokens_per_second",
            f"Tokens a model generated per second over the last {store.WINDOW_S} s, all workers.",
            labels=list(store.GENERATED_TOKENS.labels),
        )
        recent = self.metrics.recent_rates(store.GENERATED_TOKENS)
        rates = public.summed(store.GENERATED_TOKENS, recent)
        for labels, rate in sorted(rates.items()):
            family.add_metric(list(labels), rate)
        return family

    def judge_unparseable_ratio(self, public: PublicLabels) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            f"{PREFIX}judge_unparseable_ratio",
            f"Share of judge replies that did not parse, over the last {store.WINDOW_S} s "
            "(absent when the judge gave no reply in that time).",
            labels=list(store.JUDGE_REPLIES.labels),
        )
        now = time.time()  # one window for both, so the share is exact
        replies = public.summed(
            store.JUDGE_REPLIES, self.metrics.recent_rates(store.JUDGE_REPLIES, now)
        )
        unparseable = public.summed(
            store.JUDGE_UNPARSEABLE, self.metrics.recent_rates(store.JUDGE_UNPARSEABLE, now)
        )
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


def counter(
    metrics: MetricsStore, series: Series, documentation: str, public: PublicLabels
) -> CounterMetricFamily:
    family = CounterMetricFamily(f"{PREFIX}{series.name}", documentation, labels=series.labels)
    for labels, total in sorted(public.summed(series, metrics.counters(series)).items()):
        family.add_metric(list(labels), total)
    return family


def histogram(
    metrics: MetricsStore, series: Series, documentation: str, public: PublicLabels
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(f"{PREFIX}{series.name}", documentation, labels=series.labels)
    bounds = [*(str(float(bound)) for bound in series.buckets), "+Inf"]
    for labels, counts in sorted(public.merged(series, metrics.histograms(series)).items()):
        cumulative, buckets = 0.0, []
        for bound, count in zip(bounds, counts.buckets, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        family.add_metric(list(labels), buckets, counts.sum)
    return family


class PublicLabels:
    """Label values as /metrics shows them: a project's trained model as `trained`, the series
    that thereby fall together summed."""

    def __init__(self, trained: set[str]) -> None:
        self.trained = trained

    def of(self, series: Series, labels: Labels) -> Labels:
        if "model" not in series.labels:
            return labels
        index = series.labels.index("model")
        if labels[index] not in self.trained:
            return labels
        return (*labels[:index], TRAINED, *labels[index + 1 :])

    def summed(self, series: Series, values: dict[Labels, float]) -> dict[Labels, float]:
        shown: dict[Labels, float] = defaultdict(float)
        for labels, value in values.items():
            shown[self.of(series, labels)] += value
        return dict(shown)

    def merged(
        self, series: Series, values: dict[Labels, HistogramCounts]
    ) -> dict[Labels, HistogramCounts]:
        shown: dict[Labels, HistogramCounts] = {}
        for labels, counts in values.items():
            key = self.of(series, labels)
            if key not in shown:
                shown[key] = HistogramCounts(list(counts.buckets), counts.sum)
                continue
            into = shown[key]
            into.buckets = [a + b for a, b in zip(into.buckets, counts.buckets, strict=True)]
            into.sum += counts.sum
        return shown


def public_queue_name(name: str, prefix: str, trained: set[str]) -> str:
    """`<prefix>:<stage>:<engine>:<model>`, with a trained model's id as `trained`."""
    parts = name.removeprefix(f"{prefix}:").split(":", 2)
    if len(parts) == 3 and parts[2] in trained:
        return f"{prefix}:{parts[0]}:{parts[1]}:{TRAINED}"
    return name
