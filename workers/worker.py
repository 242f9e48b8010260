"""`findap worker`: an RQ worker for the models it was started with; models stay loaded."""

from __future__ import annotations

import logging

from rq import SimpleWorker

from app.kernel.batch_options import EngineName
from app.kernel.config import Settings
from app.kernel.context import ProcessContext, set_process_context
from app.kernel.models.statuses import ChunkStage
from app.kernel.queue import JOB_SERIALIZER, ModelRef, job_queue, queue_name
from workers.following_worker import FollowingWorker
from workers.loaded_models import LOCAL_ENGINES
from workers.reaper import ReaperThread, reap_quietly

log = logging.getLogger(__name__)
RULE_JUDGE = ModelRef(EngineName.RULE, EngineName.RULE.value)


def configured_models(settings: Settings) -> tuple[list[ModelRef], list[ModelRef]]:
    """The policies and judges the settings name; the configured defaults when none are named."""
    policies = [ModelRef.parse(text) for text in settings.policies]
    judges = [ModelRef.parse(text) for text in settings.judges]
    if not policies and not judges:
        policies = [ModelRef(settings.default_policy_engine, settings.default_policy_model)]
        judges = [ModelRef(settings.default_judge_engine, settings.default_judge_model)]
    return policies, judges


def served_models(settings: Settings) -> tuple[list[ModelRef], list[ModelRef]]:
    """The policies and judges this worker serves: the configured ones and the rule judge."""
    policies, judges = configured_models(settings)
    # The rule verifier loads nothing, so every worker judges by rule: a batch of given answers
    # judged by rule goes straight to that queue.
    if RULE_JUDGE not in judges:
        judges.append(RULE_JUDGE)
    return policies, judges


def followed_engines(policies: list[ModelRef], judges: list[ModelRef]) -> list[str]:
    """The engines whose new models a following worker takes: those of its models that load
    weights here (a model behind an openai server is named by its server, not found here)."""
    return sorted({m.engine for m in [*policies, *judges] if m.engine in LOCAL_ENGINES})


def run_worker(
    settings: Settings,
    *,
    burst: bool = False,
    name: str | None = None,
    follow_models: bool = False,
) -> bool:
    """Process chunks until stopped (or, with burst, until its queues are empty). With
    `follow_models` it also serves every model queued for its local engines, as it appears."""
    context = set_process_context(ProcessContext.open(settings, name=name))
    policies, judges = served_models(settings)
    # Judge queues first: finishing a sampled chunk beats starting a new one.
    names = [queue_name(settings.queue_name, ChunkStage.JUDGE, m) for m in judges] + [
        queue_name(settings.queue_name, ChunkStage.SAMPLE, m) for m in policies
    ]
    queues = [job_queue(name, context.redis) for name in names]
    # Chunks a dead worker left running, or that Redis lost, go back to the queues; then the
    # reaper keeps doing so every REAPER_INTERVAL_S while this worker lives.
    reap_quietly(context)
    reaper = ReaperThread(context).start()
    log.info(
        "serving policies %s and judges %s", [str(m) for m in policies], [str(m) for m in judges]
    )
    # SimpleWorker runs jobs in this process: CUDA does not survive fork, and loaded weights
    # stay loaded from one chunk to the next.
    worker: SimpleWorker
    engines = followed_engines(policies, judges) if follow_models else []
    if engines:
        log.info("also serving every model queued for %s, loaded on first use", engines)
        worker = FollowingWorker(
            queues,
            prefix=settings.queue_name,
            engines=engines,
            connection=context.redis,
            name=name,
            serializer=JOB_SERIALIZER,
        )
    else:
        worker = SimpleWorker(
            queues, connection=context.redis, name=name, serializer=JOB_SERIALIZER
        )
    try:
        return worker.work(burst=burst, with_scheduler=False, logging_level="INFO")
    finally:
        reaper.stop()
