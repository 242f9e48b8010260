"""`findap worker`: an RQ worker for the models it was started with; models stay loaded."""

from __future__ import annotations

import logging

from rq import Queue, SimpleWorker

from app.kernel.batch_options import EngineName
from app.kernel.config import Settings
from app.kernel.context import ProcessContext, set_process_context
from app.kernel.models.statuses import ChunkStage
from app.kernel.queue import ModelRef, queue_name
from workers.reaper import ReaperThread, reap_quietly

log = logging.getLogger(__name__)
RULE_JUDGE = ModelRef(EngineName.RULE, EngineName.RULE.value)


def served_models(settings: Settings) -> tuple[list[ModelRef], list[ModelRef]]:
    """The policies and judges this worker serves; the configured defaults when none are named."""
    policies = [ModelRef.parse(text) for text in settings.policies]
    judges = [ModelRef.parse(text) for text in settings.judges]
    if not policies and not judges:
        policies = [ModelRef(settings.default_policy_engine, settings.default_policy_model)]
        judges = [ModelRef(settings.default_judge_engine, settings.default_judge_model)]
    # The rule verifier loads nothing, so every worker judges by rule: a batch of given answers
    # judged by rule goes straight to that queue.
    if RULE_JUDGE not in judges:
        judges.append(RULE_JUDGE)
    return policies, judges


def run_worker(settings: Settings, *, burst: bool = False, name: str | None = None) -> bool:
    """Process chunks until stopped (or, with burst, until its queues are empty)."""
    context = set_process_context(ProcessContext.open(settings, name=name))
    policies, judges = served_models(settings)
    # Judge queues first: finishing a sampled chunk beats starting a new one.
    names = [queue_name(settings.queue_name, ChunkStage.JUDGE, m) for m in judges] + [
        queue_name(settings.queue_name, ChunkStage.SAMPLE, m) for m in policies
    ]
    queues = [Queue(name, connection=context.redis) for name in names]
    # Chunks a dead worker left running, or that Redis lost, go back to the queues; then the
    # reaper keeps doing so every REAPER_INTERVAL_S while this worker lives.
    reap_quietly(context)
    reaper = ReaperThread(context).start()
    log.info(
        "serving policies %s and judges %s", [str(m) for m in policies], [str(m) for m in judges]
    )
    # SimpleWorker runs jobs in this process: CUDA does not survive fork, and loaded weights
    # stay loaded from one chunk to the next.
    worker = SimpleWorker(queues, connection=context.redis, name=name)
    try:
        return worker.work(burst=burst, with_scheduler=False, logging_level="INFO")
    finally:
        reaper.stop()
