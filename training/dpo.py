"""DPO with an NLL term on the chosen answer (the FinDAP recipe's stage 2), on TRL.

The paper's settings are the defaults: beta 0.1, NLL weight 1.0, lr 5e-7, 10 % warmup. In TRL 1.x
DPO plus NLL is `loss_type=["sigmoid", "sft"]` with `loss_weights=[1.0, nll_weight]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(kw_only=True)
class DPOSettings:
    """One DPO run; each field's help says what it does, __post_init__ refuses bad values."""

    beta: float = field(default=0.1, metadata={"help": "Strength of the KL pull to the reference."})
    nll_weight: float = field(
        default=1.0, metadata={"help": "Weight of the NLL loss on chosen answers; 0 = plain DPO."}
    )
    loss_type: str = field(default="sigmoid", metadata={"help": "TRL preference loss."})
    learning_rate: float = 5e-7
    warmup_ratio: float = field(default=0.1, metadata={"help": "Share of steps warming up."})
    epochs: float = 1.0
    max_steps: int = field(
        default=-1, metadata={"help": "Stop after this many steps (-1: epochs)."}
    )
    batch_size: int = 2
    gradient_accumulation: int = 1
    max_length: int = field(default=2048, metadata={"help": "Prompt plus answer, in tokens."})
    seed: int = 0
    use_cpu: bool = field(default=False, metadata={"help": "Train on CPU even with a GPU."})

    def __post_init__(self) -> None:
        checks = {
            "beta": self.beta > 0,
            "nll_weight": self.nll_weight >= 0,
            "learning_rate": self.learning_rate > 0,
            "warmup_ratio": 0 <= self.warmup_ratio < 1,
            "epochs": self.epochs > 0,
            "batch_size": self.batch_size >= 1,
            "gradient_accumulation": self.gradient_accumulation >= 1,
            "max_length": self.max_length >= 16,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name}: out of range, got {getattr(self, name)!r}")

    def trl_config(self, output_dir: Path) -> Any:
        """The DPOConfig these settings stand for."""
        import torch
        from trl import DPOConfig

        on_gpu = torch.cuda.is_available() and not self.use_cpu
        loss_types, weights = [self.loss_type], [1.0]
        if self.nll_weight > 0:
            loss_types.append("sft")
            weights.append(self.nll_weight)
        return DPOConfig(
            output_dir=str(output_dir),
            beta=self.beta,
            loss_type=loss_types,
            loss_weights=weights,
            learning_rate=self.learning_rate,
            warmup_steps=self.warmup_ratio,
            num_train_epochs=self.epochs,
            max_steps=self.max_steps,
            per_device_train_batch_size=self.batch_size,
            gradient_accumulation_steps=self.gradient_accumulation,
            max_length=self.max_length,
            seed=self.seed,
            use_cpu=not on_gpu,
            bf16=on_gpu,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
        )


@dataclass(frozen=True)
class DPOResult:
    output_dir: Path
    steps: int
    log: list[dict[str, float]]
    """Per-step metrics TRL logged: loss, rewards/margins, rewards/accuracies, …"""


def train_dpo(
    *, model_path: str, pairs_file: Path, output_dir: Path, settings: DPOSettings
) -> DPOResult:
    """Train on a preference JSONL (a dataset download, or an uploaded preference file) and
    save the model and tokenizer to output_dir."""
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOTrainer

    dataset = load_dataset("json", data_files=str(pairs_file), split="train")
    dataset = dataset.select_columns(["prompt", "chosen", "rejected"])
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_path),
        ref_model=AutoModelForCausalLM.from_pretrained(model_path),
        args=settings.trl_config(output_dir),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    result = trainer.train()
    trainer.save_model(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    log = [
        {k: float(v) for k, v in entry.items() if isinstance(v, int | float)}
        for entry in trainer.state.log_history
        if "loss" in entry
    ]
    return DPOResult(output_dir=output_dir, steps=result.global_step, log=log)
