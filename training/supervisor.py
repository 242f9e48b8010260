"""`findap train-worker`: takes training jobs from `<prefix>:train` and runs each in a trainer
process (`python -m training.run`, or `accelerate launch` over several GPUs) that it watches.

The supervisor renews the job's heartbeat while its trainer lives and marks the job failed when
the trainer dies without saying how it ended. A reconciler (on start and then periodically) fails
running jobs whose heartbeat went stale (their supervisor died) and re-enqueues queued jobs that
Redis lost.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from rq import SimpleWorker

from app.kernel.config import Settings
from app.kernel.context import ProcessContext, process_context, set_process_context
from app.kernel.db.base import utcnow
from app.kernel.db.retry import first_line
from app.kernel.models import TrainingJob
from app.kernel.models.statuses import RunStatus
from app.kernel.process import die_with_parent, settings_environment
from app.kernel.queue import (
    JOB_SERIALIZER,
    enqueue_training_job,
    job_queue,
    training_job_in_queue,
    training_queue_name,
)
from app.kernel.training_options import DistributedOptions
from training import job_store

log = logging.getLogger(__name__)

ACCELERATE_CONFIGS = Path(__file__).parent / "accelerate"
LOG_FILE = "train.log"


def heartbeat_interval_s(settings: Settings) -> float:
    """How often a supervisor renews its job's heartbeat: a quarter of the timeout, 1 to 30 s."""
    return max(1.0, min(30.0, settings.training_heartbeat_timeout_s / 4))


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def trainer_command(job_id: str, distributed: DistributedOptions | None, gpus: int) -> list[str]:
    """One process on CPU or one GPU; `accelerate launch` with the job's strategy over several."""
    single = [sys.executable, "-m", "training.run", job_id]
    distributed = distributed or DistributedOptions()
    strategy = distributed.strategy
    processes = distributed.num_processes or gpus
    if gpus <= 1 or processes <= 1:
        return single
    if strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise RuntimeError(
            "distributed.strategy deepspeed: deepspeed is not installed on this train worker "
            "(pip install deepspeed)"
        )
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ACCELERATE_CONFIGS / f"{strategy}.yaml"),
        "--num_processes",
        str(min(processes, gpus)),
        *single[1:],
    ]


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as log_file:
            return "".join(deque(log_file, maxlen=lines)).strip()
    except OSError:
        return ""


def renew_heartbeat_quietly(context: ProcessContext, job_id: str) -> None:
    """A heartbeat that cannot be written (Postgres down past DB_RETRY_S) is logged, never fatal:
    the trainer goes on, and the next beat tries again."""
    try:
        job_store.renew_heartbeat(context, job_id)
    except Exception as error:
        log.warning("training job %s: heartbeat not written (%s)", job_id, first_line(error))


def run_training_job(job_id: str) -> str:
    """The RQ job: claim the training job, run its trainer to the end, record how it ended."""
    context = process_context()
    output_dir = (context.settings.training_dir / job_id).resolve()
    if not job_store.claim_job(context, job_id, output_dir=str(output_dir)):
        return f"{job_id}: not queued any more, skipped"
    output_dir.mkdir(parents=True, exist_ok=True)
    with context.session_factory() as session:
        job = session.get(TrainingJob, job_id)
        distributed = None if job is None else job.options.distributed
    try:
        gpus = visible_gpus()
        command = trainer_command(job_id, distributed, gpus)
    except RuntimeError as error:
        job_store.finish_job(context, job_id, RunStatus.FAILED, error=str(error))
        return f"{job_id}: {error}"
    environment = {
        **os.environ,
        **settings_environment(context.settings),
        "PYTHONUNBUFFERED": "1",
    }
    if gpus > 1 and "accelerate.commands.launch" not in command:
        # One process sees one GPU: torch would otherwise spread it over all with DataParallel.
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]
        environment["CUDA_VISIBLE_DEVICES"] = visible
    log.info("training job %s: %s", job_id, " ".join(command))
    log_path = output_dir / LOG_FILE
    with log_path.open("ab") as log_file:
        trainer = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=environment,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + context.settings.training_max_wall_s
        try:
            while True:
                try:
                    code = trainer.wait(timeout=heartbeat_interval_s(context.settings))
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() > deadline:
                        code = stop_past_wall_clock_limit(context, job_id, trainer)
                        break
                    renew_heartbeat_quietly(context, job_id)
        finally:
            if trainer.poll() is None:  # the worker is being stopped: so is its trainer
                trainer.kill()
                trainer.wait()
                job_store.finish_job(
                    context,
                    job_id,
                    RunStatus.FAILED,
                    error="the train worker was stopped while training",
                )
    if code != 0:
        # The trainer records its own errors; this catches deaths it could not report (OOM, kill).
        # Its log's last lines go to the operator's log only: they hold host paths and more.
        log.error(
            "training job %s: trainer exited with code %s; %s ends:\n%s",
            job_id,
            code,
            log_path,
            log_tail(log_path),
        )
        job_store.finish_job(
            context,
            job_id,
            RunStatus.FAILED,
            error=f"trainer exited with code {code} (the train worker's log has its last lines)",
        )
    return f"{job_id}: trainer exited with code {code}"


STOP_GRACE_S = 30
"""How long a trainer asked to stop (SIGTERM) has before it is killed."""


def stop_past_wall_clock_limit(
    context: ProcessContext, job_id: str, trainer: subprocess.Popen[bytes]
) -> int:
    """Fail the job for running past TRAINING_MAX_WALL_S, then stop its trainer."""
    limit = context.settings.training_max_wall_s
    log.warning("training job %s: past the wall-clock limit of %g s, stopping it", job_id, limit)
    # Recorded first: the trainer's own failure report, as it dies, finds the job already ended.
    job_store.finish_job(
        context,
        job_id,
        RunStatus.FAILED,
        error=f"ran past the wall-clock limit of {limit:g} s per job (TRAINING_MAX_WALL_S)",
    )
    trainer.terminate()
    try:
        return trainer.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        trainer.kill()
        return trainer.wait()


def remove_expired_outputs(context: ProcessContext) -> None:
    """Delete the output folders (checkpoints, log) of jobs that failed or were cancelled more
    than TRAINING_OUTPUT_GRACE_S ago, where they lie under this worker's TRAINING_DIR."""
    grace_s = context.settings.training_output_grace_s
    training_dir = context.settings.training_dir.resolve()
    with context.session_factory() as session:
        expired = job_store.expired_outputs(session, grace_s=grace_s, now=utcnow())
    for job_id, output_dir in expired:
        folder = Path(output_dir)
        if not folder.is_relative_to(training_dir):
            continue  # another train worker's folder: that one removes it
        shutil.rmtree(folder, ignore_errors=True)
        job_store.forget_output(
            context, job_id, message=f"output folder removed {grace_s:g} s after the job ended"
        )
        log.info("training job %s: removed its output folder %s", job_id, folder)


def reconcile_training_jobs(context: ProcessContext) -> None:
    """Fail running jobs nobody beats for; put back queued jobs Redis does not carry; remove
    the folders of jobs that failed or were cancelled long enough ago."""
    with context.session_factory() as session:
        stale = job_store.stale_running_jobs(
            session, timeout_s=context.settings.training_heartbeat_timeout_s, now=utcnow()
        )
        queued = job_store.queued_job_ids(session)
    for job_id in stale:
        log.warning("training job %s: no heartbeat, marking it failed", job_id)
        job_store.finish_job(
            context,
            job_id,
            RunStatus.FAILED,
            error="the trainer was lost: no heartbeat for "
            f"{context.settings.training_heartbeat_timeout_s} s",
        )
    for job_id in queued:
        if not training_job_in_queue(context.redis, job_id):
            log.info("training job %s: missing from the queue, re-enqueuing", job_id)
            enqueue_training_job(context.redis, context.settings.queue_name, job_id)
    remove_expired_outputs(context)


def _reconcile_forever(context: ProcessContext, stop: threading.Event) -> None:
    while not stop.wait(context.settings.training_heartbeat_timeout_s / 2):
        try:
            reconcile_training_jobs(context)
        except Exception:
            log.exception("reconciling training jobs failed; will retry")


def run_train_worker(settings: Settings, *, burst: bool = False, name: str | None = None) -> bool:
    """Take training jobs one at a time until stopped (or, with burst, until the queue is empty)."""
    context = set_process_context(ProcessContext.open(settings, name=name))
    reconcile_training_jobs(context)
    stop = threading.Event()
    threading.Thread(
        target=_reconcile_forever, args=(context, stop), name="reconcile", daemon=True
    ).start()
    queue = job_queue(training_queue_name(settings.queue_name), context.redis)
    log.info("train worker %s on %s (%d GPU(s))", context.name, queue.name, visible_gpus())
    try:
        # SimpleWorker: the job itself only supervises a trainer process, so no fork is needed.
        worker = SimpleWorker(
            [queue], connection=context.redis, name=name, serializer=JOB_SERIALIZER
        )
        return worker.work(burst=burst, with_scheduler=False, logging_level="INFO")
    finally:
        stop.set()
