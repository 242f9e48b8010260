"""ORM rows; importing this package registers every table on Base.metadata."""

from app.models.batch import Batch
from app.models.chunk import Chunk
from app.models.dataset import Dataset, DatasetPair
from app.models.idempotency import IdempotencyKey
from app.models.preference_pair import PreferencePair
from app.models.project import ApiKey, Project
from app.models.prompt import Prompt
from app.models.sample import Sample
from app.models.training_file import TrainingFile
from app.models.training_job import (
    TrainedModel,
    TrainingCheckpoint,
    TrainingEvent,
    TrainingJob,
)
from app.models.verdict import Verdict

__all__ = [
    "ApiKey",
    "Batch",
    "Chunk",
    "Dataset",
    "DatasetPair",
    "IdempotencyKey",
    "PreferencePair",
    "Project",
    "Prompt",
    "Sample",
    "TrainedModel",
    "TrainingCheckpoint",
    "TrainingEvent",
    "TrainingFile",
    "TrainingJob",
    "Verdict",
]
