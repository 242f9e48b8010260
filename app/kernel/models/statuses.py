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


TERMINAL_BATCH_STATUSES = frozenset(
    {BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.CANCELLED}
)


class ChunkStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ChunkStage(StrEnum):
    """Sampling runs on a policy worker, judging on a judge worker (maybe another machine)."""

    SAMPLE = "sample"
    JUDGE = "judge"


OPEN_CHUNK_STATUSES = frozenset({ChunkStatus.QUEUED, ChunkStatus.RUNNING})


class VerdictKind(StrEnum):
    FAP = "fap"
    SCP = "scp"


class VerdictOutcome(StrEnum):
    PARSED = "parsed"
    UNPARSEABLE = "unparseable"
    FAILED_VALIDATION = "failed_validation"


class PairKind(StrEnum):
    FAP = "fap"
    SCP = "scp"


class TrainingJobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_TRAINING_STATUSES = frozenset(
    {TrainingJobStatus.SUCCEEDED, TrainingJobStatus.FAILED, TrainingJobStatus.CANCELLED}
)


class TrainingMethod(StrEnum):
    CPT = "cpt"
    SFT = "sft"
    CPT_SFT = "cpt_sft"
    DPO = "dpo"
