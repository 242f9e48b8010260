"""Job settings → TRL settings, and how the train worker launches a trainer."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

from app.kernel.training_options import DistributedOptions, Hyperparameters
from training.supervisor import ACCELERATE_CONFIGS, trainer_command
from training.trainers import common_arguments, dpo_losses


def hyperparameters(**values: object) -> Hyperparameters:
    return Hyperparameters(learning_rate=5e-7, **values)  # type: ignore[arg-type]


def test_dpo_adds_the_nll_term_on_chosen_with_its_weight() -> None:
    assert dpo_losses(hyperparameters()) == {
        "beta": 0.1,
        "loss_type": ["sigmoid", "sft"],
        "loss_weights": [1.0, 1.0],
    }
    assert dpo_losses(hyperparameters(nll_weight=0.0))["loss_type"] == ["sigmoid"]
    ipo = dpo_losses(hyperparameters(loss_type="ipo", nll_weight=0.5, beta=0.3))
    assert ipo == {"beta": 0.3, "loss_type": ["ipo", "sft"], "loss_weights": [1.0, 0.5]}


def test_common_arguments_follow_the_job(tmp_path: Path) -> None:
    from trl import DPOConfig

    arguments = common_arguments(
        hyperparameters(max_steps=7, checkpoint_every=3, eval_fraction=0.1), tmp_path, has_eval=True
    )
    config = DPOConfig(**arguments, **dpo_losses(hyperparameters()))
    assert config.max_steps == 7 and config.save_steps == 3 and config.eval_steps == 3
    assert config.learning_rate == 5e-7 and config.warmup_steps == 0.1
    assert config.logging_steps == 1 and config.use_cpu
    # Two checkpoints kept; with an eval split the best (lowest eval loss) is one of them.
    assert config.save_total_limit == 2 and config.metric_for_best_model == "eval_loss"
    assert config.greater_is_better is False
    per_epoch = common_arguments(hyperparameters(save_total_limit=5), tmp_path, has_eval=False)
    assert per_epoch["save_strategy"] == "epoch" and "eval_strategy" not in per_epoch
    assert per_epoch["save_total_limit"] == 5 and "metric_for_best_model" not in per_epoch


def test_one_process_on_cpu_or_one_gpu_accelerate_launch_over_several() -> None:
    single = [sys.executable, "-m", "training.run", "ftjob_1"]
    assert trainer_command("ftjob_1", None, gpus=0) == single
    assert (
        trainer_command("ftjob_1", DistributedOptions(strategy="fsdp", num_processes=None), gpus=1)
        == single
    )
    launch = trainer_command(
        "ftjob_1", DistributedOptions(strategy="fsdp", num_processes=None), gpus=4
    )
    assert launch[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert launch[launch.index("--config_file") + 1] == str(ACCELERATE_CONFIGS / "fsdp.yaml")
    assert launch[launch.index("--num_processes") + 1] == "4"
    assert launch[-3:] == ["-m", "training.run", "ftjob_1"]
    two = trainer_command("ftjob_1", DistributedOptions(strategy="ddp", num_processes=2), gpus=8)
    assert two[two.index("--num_processes") + 1] == "2"
    # No distributed settings on a multi-GPU machine: data parallel over every GPU.
    assert "ddp.yaml" in " ".join(trainer_command("ftjob_1", None, gpus=2))


def test_deepspeed_is_refused_where_it_is_not_installed() -> None:
    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("deepspeed is installed here")
    with pytest.raises(RuntimeError, match="deepspeed is not installed"):
        trainer_command(
            "ftjob_1", DistributedOptions(strategy="deepspeed", num_processes=2), gpus=2
        )


@pytest.mark.parametrize("strategy", ["ddp", "fsdp", "deepspeed"])
def test_accelerate_configs_load(strategy: str) -> None:
    from accelerate.commands.config.config_args import ClusterConfig

    path = ACCELERATE_CONFIGS / f"{strategy}.yaml"
    config = ClusterConfig.from_yaml_file(path)
    expected = {"ddp": "MULTI_GPU", "fsdp": "FSDP", "deepspeed": "DEEPSPEED"}[strategy]
    assert str(config.distributed_type).endswith(expected)
    assert yaml.safe_load(path.read_text())["mixed_precision"] == "bf16"
