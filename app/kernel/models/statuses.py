"""String-valued status enums shared by rows, schemas and workers."""

from __future__ import annotations

from enum import StrEnum


class BatchStatus(StrEnum):
    VALIDATING = "validating"
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    WAITING = "waiting"
    """An evaluation's hidden batch held back until its model exists (a training job's
    after-evaluation): not queued, not counted as open work, skipped by the reaper."""


class BatchKind(StrEnum):
    """A user's batch, or the hidden batch of an evaluation (not listed, not counted as one)."""

    BATCH = "batch"
    EVALUATION = "evaluation"


TERMINAL_BATCH_STATUSES = frozenset(
    {BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.CANCELLED}
)
IDLE_BATCH_STATUSES = TERMINAL_BATCH_STATUSES | {BatchStatus.WAITING}
"""Batches none of whose chunks may be sent to a worker now."""


class RunStatus(StrEnum):
    """The life of a unit of work a worker runs: a chunk, a training job."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


OPEN_RUN_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
TERMINAL_RUN_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})


class ChunkStage(StrEnum):
    """Sampling runs on a policy worker, judging on a judge worker (maybe another machine)."""

    SAMPLE = "sample"
    JUDGE = "judge"


class SignalKind(StrEnum):
    """The method's two signals, of verdicts and of pairs: FAP (is the final answer right) and
    SCP (the first wrong step and its correction)."""

    FAP = "fap"
    SCP = "scp"


class VerdictOutcome(StrEnum):
    PARSED = "parsed"
    NO_STEP_ERROR = "no_step_error"
    """SCP only: the judge found every reasoning step right (only the final answer is wrong)."""
    UNPARSEABLE = "unparseable"
    FAILED_VALIDATION = "failed_validation"
    TRUNCATED = "truncated"
    """FAP only: the answer was cut at max_tokens, so it is not judged and makes no pair."""
    NO_SUCCESS = "no_success"
    """Rollouts only: no continuation from the question alone succeeded, so no prefix can be
    told good from bad (the policy cannot solve the question): no label, no pair."""
    UNDECIDED = "undecided"
    """Rollouts only: a prefix had no success but some continuations were cut at max_tokens,
    which might have succeeded: the search stops there, no label, no pair."""


ROLLOUT_VERDICT = "rollout"
"""The verdict kind of a first wrong step found by rollouts (beside SignalKind's fap and scp;
its pairs are SCP pairs)."""


class FinishReason(StrEnum):
    """Why a sampled answer ended (a sample's `finish_reason`; None for a given answer)."""

    STOP = "stop"
    LENGTH = "length"
    """Cut at max_tokens: stored as truncated, never judged, never paired."""


class SampleSource(StrEnum):
    """Where an answer came from: sampled from the policy, or given with the prompt."""

    POLICY = "policy"
    GIVEN = "given"


class TrainingMethod(StrEnum):
    CPT = "cpt"
    SFT = "sft"
    CPT_SFT = "cpt_sft"
    DPO = "dpo"
