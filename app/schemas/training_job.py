"""API shapes of training jobs and models."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from app.schemas.batch import StrictModel

MethodName = Literal["cpt", "sft", "cpt_sft", "dpo"]
SchedulerName = Literal["linear", "cosine", "constant", "constant_with_warmup"]
StrategyName = Literal["ddp", "fsdp", "deepspeed"]

DEFAULT_LEARNING_RATES: dict[str, float] = {
    "cpt": 2e-5,
    "sft": 2e-5,
    "cpt_sft": 2e-5,
    "dpo": 5e-7,  # the paper's DPO setting
}

DPO_ONLY = ("beta", "nll_weight", "loss_type")
LM_ONLY = ("packing", "cpt_ratio")
"""Settings of the language-modelling methods (cpt, sft, cpt_sft), refused for dpo."""

DPOLossType = Literal[
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
]


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


class Hyperparameters(StrictModel):
    epochs: float = Field(default=1.0, gt=0, le=1000)
    max_steps: int | None = Field(
        default=None, ge=1, description="Stop after this many optimizer steps (overrides epochs)."
    )
    batch_size: int = Field(
        default=8,
        ge=1,
        le=4096,
        description="Per device: examples, or packed max_length sequences when packing.",
    )
    gradient_accumulation: int = Field(default=1, ge=1, le=1024)
    learning_rate: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Default by method: 5e-7 for dpo (the paper), 2e-5 otherwise.",
    )
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    lr_scheduler: SchedulerName = "linear"
    weight_decay: float = Field(default=0.0, ge=0, le=1)
    max_length: int = Field(default=2048, ge=16, le=1_048_576, description="Tokens per sequence.")
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    eval_fraction: float = Field(
        default=0.0, ge=0, le=0.5, description="Share of examples held out for evaluation."
    )
    checkpoint_every: int | None = Field(
        default=None, ge=1, description="Save a checkpoint every N steps (default: each epoch)."
    )
    packing: bool = Field(
        default=True,
        description="cpt, sft, cpt_sft: pack examples into max_length sequences; attention "
        "stays within each example.",
    )
    cpt_ratio: float = Field(
        default=1.0,
        gt=0,
        le=100,
        description="cpt_sft: CPT texts per instruction example after downsampling (1.0 = 1:1).",
    )
    beta: float = Field(default=0.1, gt=0, le=100, description="dpo: KL strength.")
    nll_weight: float = Field(
        default=1.0, ge=0, le=100, description="dpo: weight of the NLL term on chosen; 0 = off."
    )
    loss_type: DPOLossType = Field(default="sigmoid", description="dpo: TRL preference loss.")


class LoraOptions(StrictModel):
    r: int = Field(default=16, ge=1, le=1024)
    alpha: int = Field(default=32, ge=1, le=4096)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class DistributedOptions(StrictModel):
    strategy: StrategyName = Field(
        default="ddp", description="How `accelerate launch` shards the job over GPUs."
    )
    num_processes: int | None = Field(
        default=None, ge=1, le=1024, description="Processes (GPUs); default: every visible GPU."
    )


class TrainingJobCreate(StrictModel):
    method: MethodName
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

    @model_validator(mode="after")
    def _method_settings(self) -> TrainingJobCreate:
        given = self.hyperparameters.model_fields_set
        foreign = DPO_ONLY if self.method != "dpo" else LM_ONLY
        for name in foreign:
            if name in given:
                raise ValueError(f"hyperparameters.{name}: does not apply to method {self.method}")
        if self.hyperparameters.learning_rate is None:
            self.hyperparameters.learning_rate = DEFAULT_LEARNING_RATES[self.method]
        if not self.data.datasets and not self.data.files:
            raise ValueError("data: name at least one dataset or file")
        return self

    def resolved_hyperparameters(self) -> dict[str, Any]:
        """Every setting the method uses, defaults filled in; other methods' settings left out."""
        foreign = DPO_ONLY if self.method != "dpo" else LM_ONLY
        return self.hyperparameters.model_dump(exclude=set(foreign))


class CheckpointOut(BaseModel):
    step: int
    loss: float | None
    path: str
    created_at: datetime


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
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TrainingJobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[TrainingJobOut]
    has_more: bool
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


class TrainingEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[TrainingEventOut]
    has_more: bool
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
    path: str | None = None
    training_job_id: str | None = None
    method: str | None = None
    base_model: str | None = None
    created_at: datetime | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]
