"""A training job's settings, as the API validated them and as the trainer reads them back from
the job's row."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.kernel.batch_options import StrictModel
from app.kernel.models.statuses import TrainingMethod

SchedulerName = Literal["linear", "cosine", "constant", "constant_with_warmup"]
StrategyName = Literal["ddp", "fsdp", "deepspeed"]

STAGE_ONE_DEFAULTS: dict[str, float] = {
    "learning_rate": 5e-6,
    "weight_decay": 0.1,
    "adam_beta2": 0.95,
}
"""The paper's Table G.1 for joint CPT + instruction tuning (stage 1)."""

DPO_DEFAULTS: dict[str, float] = {"learning_rate": 5e-7, "weight_decay": 0.0, "adam_beta2": 0.999}
"""Table G.1 gives DPO's learning rate; weight decay and beta2 are AdamW's usual values (ours)."""

METHOD_DEFAULTS: dict[TrainingMethod, dict[str, float]] = {
    TrainingMethod.CPT: STAGE_ONE_DEFAULTS,
    TrainingMethod.SFT: STAGE_ONE_DEFAULTS,
    TrainingMethod.CPT_SFT: STAGE_ONE_DEFAULTS,
    TrainingMethod.DPO: DPO_DEFAULTS,
}
"""Settings whose default depends on the method; left unset, a job gets these."""

DEFAULT_LEARNING_RATES: dict[TrainingMethod, float] = {
    method: defaults["learning_rate"] for method, defaults in METHOD_DEFAULTS.items()
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


class EarlyStopping(StrictModel):
    patience: int = Field(
        ge=1,
        le=1000,
        description="Evaluations in a row without a lower eval loss before the run stops.",
    )
    min_delta: float = Field(
        default=0.0,
        ge=0,
        description="How much lower an eval loss must be to count as lower.",
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
        description="Default by method (the paper's Table G.1): 5e-6 for cpt, sft and cpt_sft, "
        "5e-7 for dpo.",
    )
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    lr_scheduler: SchedulerName = "linear"
    weight_decay: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="AdamW weight decay. Default by method: 0.1 for cpt, sft and cpt_sft "
        "(Table G.1), 0 for dpo.",
    )
    adam_beta1: float = Field(default=0.9, ge=0, lt=1, description="AdamW beta1.")
    adam_beta2: float | None = Field(
        default=None,
        ge=0,
        lt=1,
        description="AdamW beta2. Default by method: 0.95 for cpt, sft and cpt_sft (Table G.1), "
        "0.999 for dpo.",
    )
    max_length: int = Field(default=2048, ge=16, le=1_048_576, description="Tokens per sequence.")
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    eval_fraction: float = Field(
        default=0.0, ge=0, le=0.5, description="Share of examples held out for evaluation."
    )
    checkpoint_every: int | None = Field(
        default=None,
        ge=1,
        description="Save a checkpoint every N steps (default: each epoch); at most the job's "
        "optimizer steps.",
    )
    save_total_limit: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Checkpoints kept on disk: the newest ones, and with an eval split the best "
        "(lowest eval_loss) among them; older ones are deleted as new ones are saved.",
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
        description="cpt_sft: CPT tokens per instruction token, counted after the CPT texts are "
        "cut into max_length pieces (1.0 = 1:1 by size).",
    )
    early_stopping: EarlyStopping | None = Field(
        default=None,
        description="Stop when the eval loss has not fallen for `patience` evaluations, and "
        "make the checkpoint with the lowest eval loss the job's model; needs eval_fraction.",
    )
    beta: float = Field(default=0.1, gt=0, le=100, description="dpo: KL strength.")
    nll_weight: float = Field(
        default=1.0, ge=0, le=100, description="dpo: weight of the NLL term on chosen; 0 = off."
    )
    loss_type: DPOLossType = Field(default="sigmoid", description="dpo: TRL preference loss.")

    def with_method_defaults(self, method: TrainingMethod | str) -> Hyperparameters:
        """These settings, with the method's default wherever one was left unset."""
        defaults = METHOD_DEFAULTS[TrainingMethod(method)]
        missing = {name: value for name, value in defaults.items() if getattr(self, name) is None}
        return self.model_copy(update=missing)


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


class TrainingSettings(StrictModel):
    """What the trainer needs of a job, read back from its row."""

    method: TrainingMethod
    hyperparameters: Hyperparameters
    lora: LoraOptions | None = None
    distributed: DistributedOptions | None = None

    @classmethod
    def of_row(
        cls,
        method: str,
        hyperparameters: dict[str, Any],
        lora: dict[str, Any] | None,
        distributed: dict[str, Any] | None,
    ) -> TrainingSettings:
        settings = cls.model_validate(
            {
                "method": method,
                "hyperparameters": hyperparameters,
                "lora": lora,
                "distributed": distributed,
            }
        )
        # Rows written before a setting had a per-method default hold none for it.
        settings.hyperparameters = settings.hyperparameters.with_method_defaults(settings.method)
        return settings
