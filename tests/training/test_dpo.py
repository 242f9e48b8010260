"""DPO + NLL on a tiny model: trains, logs reward metrics, saves a model that loads again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from training.dpo import DPOSettings, train_dpo

PAIRS = [
    {
        "prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
        "chosen": [
            {"role": "assistant", "content": f"Step 1: {i} + {i} = {2 * i}.\nAnswer: {2 * i}"}
        ],
        "rejected": [{"role": "assistant", "content": f"Step 1: {i} + {i} = {i}.\nAnswer: {i}"}],
        "kind": "fap",
    }
    for i in range(8)
]


def test_dpo_with_nll_trains_and_saves_a_loadable_model(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    pairs_file = tmp_path / "pairs.jsonl"
    pairs_file.write_text("\n".join(json.dumps(p) for p in PAIRS))
    settings = DPOSettings(
        max_steps=3, batch_size=2, learning_rate=1e-3, max_length=128, use_cpu=True
    )
    config = settings.trl_config(tmp_path / "out")
    assert config.loss_type == ["sigmoid", "sft"] and config.loss_weights == [1.0, 1.0]

    result = train_dpo(
        model_path=str(tiny_model_dir),
        pairs_file=pairs_file,
        output_dir=tmp_path / "out",
        settings=settings,
    )

    assert result.steps == 3
    assert len(result.log) == 3
    assert all(torch.isfinite(torch.tensor(entry["loss"])) for entry in result.log)
    assert "rewards/margins" in result.log[0] and "rewards/accuracies" in result.log[0]
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(trained.state_dict().values(), base.state_dict().values(), strict=True)
    )


def test_plain_dpo_without_nll_and_bad_settings_are_refused() -> None:
    assert DPOSettings(nll_weight=0).trl_config(Path("/tmp/x")).loss_type == ["sigmoid"]
    with pytest.raises(ValueError, match="beta: out of range, got 0"):
        DPOSettings(beta=0)
    with pytest.raises(ValueError, match="warmup_ratio: out of range, got 1.5"):
        DPOSettings(warmup_ratio=1.5)
