"""ORM rows; importing this package registers every table on Base.metadata."""

from app.kernel.models.batch import Batch
from app.kernel.models.chunk import Chunk
from app.kernel.models.dataset import Dataset, DatasetPair
from app.kernel.models.evaluation import Evaluation
from app.kernel.models.idempotency import IdempotencyKey
from app.kernel.models.preference_pair import PreferencePair
from app.kernel.models.project import ApiKey, Project
from app.kernel.models.prompt import Prompt
from app.kernel.models.review import Review
from app.kernel.models.rollout import PrefixRollout
from app.kernel.models.sample import Sample
from app.kernel.models.training_file import TrainingFile
from app.kernel.models.training_job import (
    TrainedModel,
    TrainingCheckpoint,
    TrainingEvent,
    TrainingJob,
)
from app.kernel.models.verdict import Verdict
from app.kernel.models.webhook import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiKey",
    "Batch",
    "Chunk",
    "Dataset",
    "DatasetPair",
    "Evaluation",
    "IdempotencyKey",
    "PreferencePair",
    "PrefixRollout",
    "Review",
    "Project",
    "Prompt",
    "Sample",
    "TrainedModel",
    "TrainingCheckpoint",
    "TrainingEvent",
    "TrainingFile",
    "TrainingJob",
    "Verdict",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
