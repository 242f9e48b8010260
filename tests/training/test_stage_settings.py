"""The paper's stage settings on a tiny model: AdamW betas reach the optimizer, the eval split
keeps each question on one side, cpt_sft mixes by tokens, early stopping keeps the best
checkpoint."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from transformers import AutoModelForCausalLM, AutoTokenizer

from app.kernel.config import Settings
from app.kernel.training_options import Hyperparameters
from tests.training.jobs import create_job, events, job, run_training, upload
from training.data import (
    InstructionExample,
    JobData,
    language_modeling_rows,
    question_key,
    split_by_group,
)
from training.trainers import build_trainer, common_arguments, early_stopping_callbacks


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_adam_betas_and_weight_decay_reach_the_optimizer(
    tiny_model_dir: Path, tokenizer, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from datasets import Dataset

    hp = Hyperparameters(adam_beta1=0.8, max_steps=1).with_method_defaults("sft")
    rows = language_modeling_rows(
        tokenizer,
        method="sft",
        data=JobData(instructions=[InstructionExample(prompt="Q?", completion=" A")]),
        max_length=64,
        cpt_ratio=1.0,
        seed=0,
    ).rows
    trainer = build_trainer(
        method="sft",
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32),
        tokenizer=tokenizer,
        train_dataset=Dataset.from_list(rows),
        eval_dataset=None,
        arguments=common_arguments(hp, tmp_path, has_eval=False),
        hp=hp,
        lora=None,
        callbacks=[],
    )
    optimizer = trainer.create_optimizer()
    assert isinstance(optimizer, torch.optim.AdamW)
    assert all(group["betas"] == (0.8, 0.95) for group in optimizer.param_groups)
    assert {group["weight_decay"] for group in optimizer.param_groups} == {0.1, 0.0}  # no decay
    assert optimizer.param_groups[0]["lr"] == 5e-6  # on biases and norms, as transformers does


def test_early_stopping_needs_load_best_model_and_the_callback(tmp_path: Path) -> None:
    hp = Hyperparameters(
        learning_rate=1e-3, eval_fraction=0.2, checkpoint_every=2, early_stopping={"patience": 3}
    )
    arguments = common_arguments(hp, tmp_path, has_eval=True)
    assert arguments["load_best_model_at_end"] is True
    assert arguments["metric_for_best_model"] == "eval_loss"
    assert arguments["eval_steps"] == arguments["save_steps"] == 2
    (callback,) = early_stopping_callbacks(hp, has_eval=True)
    assert callback.early_stopping_patience == 3
    plain = Hyperparameters(learning_rate=1e-3, eval_fraction=0.2)
    assert "load_best_model_at_end" not in common_arguments(plain, tmp_path, has_eval=True)
    assert early_stopping_callbacks(plain, has_eval=True) == []


def test_the_eval_split_keeps_every_question_on_one_side() -> None:
    # DPO pairs: 30 prompts with 1 to 6 pairs each (FAP and SCP pairs share their question).
    rng = random.Random(3)
    prompts = [prompt for i in range(30) for prompt in [f"Question {i}?"] * rng.randint(1, 6)]
    groups = [question_key(prompt) for prompt in prompts]
    train, held_out = split_by_group(groups, eval_fraction=0.2, seed=7)
    assert sorted(train + held_out) == list(range(len(groups)))
    assert {groups[i] for i in train}.isdisjoint({groups[i] for i in held_out})
    assert len(held_out) >= 0.2 * len(groups) and len(train) > 0
    assert split_by_group(groups, eval_fraction=0.2, seed=7) == (train, held_out)  # seeded
    # One question only: nothing to hold out without putting it on both sides.
    assert split_by_group(["Q?"] * 5, eval_fraction=0.5, seed=0) == ([0, 1, 2, 3, 4], [])


def test_sft_examples_split_by_user_turn_and_cpt_pieces_by_text(tokenizer) -> None:  # type: ignore[no-untyped-def]
    chat = [
        InstructionExample(
            prompt=[{"role": "system", "content": system}, {"role": "user", "content": q}],
            completion=[{"role": "assistant", "content": a}],
        )
        for q in [f"What is ratio {i}?" for i in range(6)]
        for system, a in [("Be brief.", " Short."), ("Explain.", " Long answer.")]
    ]
    long_text = "Net interest margin widened as deposit costs lagged. " * 30
    data = JobData(cpt_texts=[long_text, "Short filing."], instructions=chat)
    mixed = language_modeling_rows(
        tokenizer, method="cpt_sft", data=data, max_length=32, cpt_ratio=10.0, seed=0
    )
    assert len(set(mixed.groups)) == 6 + 2 and mixed.counts["cpt_sequences"] > 2
    for seed in range(5):
        train, held_out = split_by_group(mixed.groups, eval_fraction=0.3, seed=seed)
        assert held_out, seed
        assert {mixed.groups[i] for i in train}.isdisjoint({mixed.groups[i] for i in held_out})


def test_cpt_ratio_counts_tokens_after_chunking(tokenizer) -> None:  # type: ignore[no-untyped-def]
    # One long report among many one-liners: by text count 1:1 would be any 4 of them, whatever
    # their length; by tokens the mix holds as many CPT tokens as instruction tokens.
    texts = ["Annual report. " + "Revenue and margins by segment. " * 200] + [
        f"Note {i}." for i in range(40)
    ]
    instructions = [
        InstructionExample(prompt=f"What is item {i}?", completion=f" Item {i} is a ratio.")
        for i in range(4)
    ]
    for ratio in (1.0, 3.0):
        for seed in range(4):
            mixed = language_modeling_rows(
                tokenizer,
                method="cpt_sft",
                data=JobData(cpt_texts=texts, instructions=instructions),
                max_length=64,
                cpt_ratio=ratio,
                seed=seed,
            )
            counts = mixed.counts
            budget = ratio * counts["instruction_tokens"]
            # Pieces are drawn until the budget is reached: over it by less than one piece.
            assert budget <= counts["cpt_tokens"] < budget + 64, (ratio, seed, counts)
            assert counts["tokens"] == sum(len(row["input_ids"]) for row in mixed.rows)
            assert all(len(row["input_ids"]) <= 64 for row in mixed.rows)


RANDOM_WORDS = ["alpha", "bravo", "delta", "kilo", "lima", "oscar", "quebec", "sierra", "tango"]


def memorisation_lines(count: int, seed: int) -> list[dict[str, object]]:
    """Questions whose answers are random words: training on some says nothing about the
    others, so the eval loss falls while the model learns the format and the words, then rises
    as it memorises the training answers (seeded: the loss is lowest at step 28 of 34)."""
    rng = random.Random(seed)
    return [
        {
            "messages": [
                {"role": "user", "content": f"Code word {i}?"},
                {"role": "assistant", "content": " ".join(rng.choices(RANDOM_WORDS, k=6))},
            ]
        }
        for i in range(count)
    ]


def test_early_stopping_stops_a_run_whose_eval_loss_rises_and_keeps_the_best_checkpoint(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    sft = upload(client, "sft", memorisation_lines(24, seed=1))
    created = create_job(
        client,
        method="sft",
        base_model=str(tiny_model_dir),
        data={"files": [sft]},
        hyperparameters={
            "max_steps": 200,
            "batch_size": 6,
            "learning_rate": 3e-2,
            "warmup_ratio": 0.0,
            "weight_decay": 0.0,
            "max_length": 64,
            "packing": False,
            "eval_fraction": 0.25,
            "checkpoint_every": 2,
            "early_stopping": {"patience": 3},
        },
    )
    assert created["hyperparameters"]["early_stopping"] == {"patience": 3, "min_delta": 0.0}
    run_training(settings)

    done = job(client, created["id"])
    assert done["status"] == "succeeded", done["error"]
    result = done["result"]
    eval_losses = {
        e["step"]: e["metrics"]["eval_loss"]
        for e in events(client, created["id"], "eval")
        if "eval_loss" in e["metrics"]
    }
    best_step = min(eval_losses, key=eval_losses.__getitem__)
    assert result["stopped_early"] is True and result["steps"] < 200
    # Stopped after 3 evaluations in a row without a lower eval loss than the best.
    assert max(eval_losses) == result["steps"] == best_step + 3 * 2
    assert result["best_step"] == best_step
    assert result["best_eval_loss"] == pytest.approx(eval_losses[best_step])
    assert result["eval_examples"] == 6  # 24 questions, a quarter held out
    message = [e["message"] for e in events(client, created["id"], "status")][-2]
    assert message.startswith(
        f"stopped early: eval_loss stopped falling; the model is checkpoint-{best_step}"
    )

    # The registered model is the best checkpoint's weights, not the last step's.
    folder = settings.training_dir.resolve() / created["id"]
    model = AutoModelForCausalLM.from_pretrained(folder / "model")
    best = AutoModelForCausalLM.from_pretrained(folder / f"checkpoint-{best_step}")
    last = AutoModelForCausalLM.from_pretrained(folder / f"checkpoint-{result['steps']}")
    weights = dict(model.named_parameters())
    assert all(torch.equal(weights[name], p) for name, p in best.named_parameters())
    assert not all(torch.equal(weights[name], p) for name, p in last.named_parameters())
    assert client.get(f"/v1/models/{done['output_model']}").json()["training_job_id"] == done["id"]


def test_early_stopping_on_data_of_a_single_question_fails_naming_the_field(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    line = {"prompt": "What is EBITDA?", "completion": " Earnings before interest."}
    sft = upload(client, "sft", [line] * 6)
    created = create_job(
        client,
        method="sft",
        base_model=str(tiny_model_dir),
        data={"files": [sft]},
        hyperparameters={"max_steps": 4, "eval_fraction": 0.5, "early_stopping": {"patience": 1}},
    )
    run_training(settings)

    done = job(client, created["id"])
    assert done["status"] == "failed"
    assert done["error"] == (
        "hyperparameters.early_stopping: nothing to evaluate on: the eval split keeps each "
        "question (or CPT text) on one side, and this data holds only one; early stopping needs "
        "at least two (no checkpoint was saved)"
    )
