"""API shapes of training jobs and models."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from app.kernel.batch_options import JudgeOptions, StrictModel
from app.kernel.models.statuses import TrainingMethod
from app.kernel.training_options import (  # noqa: F401  (the API's names for them)
    DEFAULT_LEARNING_RATES,
    DPO_ONLY,
    LM_ONLY,
    METHOD_DEFAULTS,
    DistributedOptions,
    DPOLossType,
    EarlyStopping,
    Hyperparameters,
    LoraOptions,
    SchedulerName,
    StrategyName,
)
from app.schemas.evaluation import MAX_EVAL_SAMPLES, EvalMode, Score
from app.schemas.page import ListPage


class JobEvaluationRequest(StrictModel):
    """Evaluate the base model and the trained model on the same held-out questions."""

    file_id: str | None = Field(default=None, description="An uploaded file of purpose eval.")
    dataset_id: str | None = Field(
        default=None, description="A dataset: the distinct questions behind its pairs."
    )
    mode: EvalMode = Field(default="cot", description="cot or direct, as for /v1/evaluations.")
    samples: int = Field(
        default=1, ge=1, le=MAX_EVAL_SAMPLES, description="Answers per question (1: greedy)."
    )
    max_tokens: int | None = Field(
        default=None, ge=1, le=131_072, description="As for /v1/evaluations (default 1024)."
    )
    judge: JudgeOptions = Field(
        default_factory=JudgeOptions,
        description="Who checks the final answers, as for /v1/evaluations.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> JobEvaluationRequest:
        if (self.file_id is None) == (self.dataset_id is None):
            raise ValueError("file_id, dataset_id: give exactly one source of questions")
        return self


class TrainingData(StrictModel):
    datasets: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Preference datasets (ds_…): pairs for dpo; prompt + chosen answer for sft.",
    )
    files: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Uploaded files (file_…): purpose cpt, sft or preference, as the method needs.",
    )


class TrainingJobCreate(StrictModel):
    method: TrainingMethod
    base_model: str = Field(
        min_length=1,
        max_length=1024,
        description="A registered model, a model a job produced, a folder, or a hub id.",
    )
    data: TrainingData
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    lora: LoraOptions | None = Field(default=None, description="Train a LoRA adapter (merged).")
    distributed: DistributedOptions | None = None
    suffix: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z0-9][\w.\-]*$",
        description="Part of the produced model's id.",
    )
    evaluation: JobEvaluationRequest | None = Field(
        default=None,
        description="Evaluate the base model (an earlier run of the same settings is reused) "
        "and, once trained, the output model on these questions: the job then shows "
        "before, after and their difference per task.",
    )

    @model_validator(mode="after")
    def _method_settings(self) -> TrainingJobCreate:
        given = self.hyperparameters.model_fields_set
        foreign = DPO_ONLY if self.method != TrainingMethod.DPO else LM_ONLY
        for name in foreign:
            if name in given:
                raise ValueError(f"hyperparameters.{name}: does not apply to method {self.method}")
        self.hyperparameters = self.hyperparameters.with_method_defaults(self.method)
        if self.hyperparameters.early_stopping is not None and not (
            self.hyperparameters.eval_fraction > 0
        ):
            raise ValueError(
                "hyperparameters.early_stopping: needs an eval split to watch; set "
                "hyperparameters.eval_fraction above 0"
            )
        if not self.data.datasets and not self.data.files:
            raise ValueError("data: name at least one dataset or file")
        return self

    def resolved_hyperparameters(self) -> dict[str, Any]:
        """Every setting the method uses, defaults filled in; other methods' settings left out."""
        foreign = DPO_ONLY if self.method != TrainingMethod.DPO else LM_ONLY
        return self.hyperparameters.model_dump(exclude=set(foreign))


class CheckpointOut(BaseModel):
    step: int
    loss: float | None
    path: str
    created_at: datetime


class TrainingProgress(BaseModel):
    step: int | None = Field(description="The last optimizer step that reported its metrics.")
    total_steps: int | None = Field(
        description="The optimizer steps the trainer counted before it started."
    )
    loss: float | None = Field(description="The training loss at `step`.")


class EvaluationSummary(BaseModel):
    """One side of a job's before/after: the evaluation's id, status and scores."""

    id: str
    model: str
    status: str = Field(description="As an evaluation's; waiting until the job's model exists.")
    accuracy: Score | None
    by_task: dict[str, Score | None]


class EvaluationDelta(BaseModel):
    overall: float | None = Field(description="after − before accuracy, both completed.")
    by_task: dict[str, float | None] = Field(
        description="Per task: after − before (null where a side has no score)."
    )


class JobEvaluationOut(BaseModel):
    before: EvaluationSummary | None
    after: EvaluationSummary | None
    delta: EvaluationDelta | None = Field(
        description="Once both evaluations completed; null before."
    )


class TrainingJobOut(BaseModel):
    id: str
    object: Literal["training_job"] = "training_job"
    method: str
    status: str
    base_model: str
    output_model: str = Field(description="The model id this job registers when it succeeds.")
    data: dict[str, Any]
    hyperparameters: dict[str, Any]
    lora: dict[str, Any] | None
    distributed: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    cancel_requested: bool
    last_checkpoint: CheckpointOut | None
    progress: TrainingProgress | None = Field(
        default=None, description="Once the trainer has counted its steps: where it stands."
    )
    evaluation: JobEvaluationOut | None = Field(
        default=None,
        description="When the job asked for one: the base and trained model's "
        "accuracy, and their difference per task.",
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TrainingJobList(ListPage):
    data: list[TrainingJobOut]
    first_id: str | None
    last_id: str | None


class TrainingEventOut(BaseModel):
    id: int
    object: Literal["training_job.event"] = "training_job.event"
    kind: str = Field(description="metrics | eval | checkpoint | status")
    step: int | None
    metrics: dict[str, Any] | None = Field(
        description="TRL's names: loss, learning_rate, grad_norm; dpo adds rewards/margins, "
        "rewards/accuracies, rewards/chosen, rewards/rejected."
    )
    message: str | None
    created_at: datetime


class TrainingEventList(ListPage):
    data: list[TrainingEventOut]
    first_id: int | None
    last_id: int | None


class CheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CheckpointOut]


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    source: Literal["registered", "configured", "trained"] = Field(
        description="registered: built in (offline); configured: named in the settings; "
        "trained: produced by a training job."
    )
    description: str | None = None
    path: str | None = Field(
        default=None, description="Always null: models are named by id, never by host folder."
    )
    training_job_id: str | None = None
    method: str | None = None
    base_model: str | None = None
    created_at: datetime | None = None


class ModelList(ListPage):
    """Registered models, then configured ones, then the project's trained models (newest
    first): one list, paged like the others."""

    data: list[ModelOut]
    first_id: str | None
    last_id: str | None
