"""Shaping a job's data: response-only labels, the CPT:IT mix, and packing that keeps attention
within each example."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl.data_utils import pack_dataset
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from training.data import (
    IGNORE_INDEX,
    InstructionExample,
    JobData,
    instruction_from_sft_line,
    language_modeling_rows,
    preference_rows,
    tokenize_instruction,
    tokenize_text,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_instruction_labels_cover_the_response_and_its_end_of_turn_only(tokenizer) -> None:  # type: ignore[no-untyped-def]
    example = instruction_from_sft_line(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is 2+2?"},
                {"role": "assistant", "content": "Answer: 4"},
            ]
        }
    )
    row = tokenize_instruction(tokenizer, example)
    trained = [
        t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != IGNORE_INDEX
    ]
    assert tokenizer.decode(trained) == "Answer: 4<|im_end|>\n"
    prompt_part = row["input_ids"][: len(row["input_ids"]) - len(trained)]
    assert tokenizer.decode(prompt_part).endswith("<|im_start|>assistant\n")


def test_plain_prompt_completion_trains_on_the_completion_and_eos(tokenizer) -> None:  # type: ignore[no-untyped-def]
    row = tokenize_instruction(tokenizer, InstructionExample(prompt="Q: 2+2?", completion=" 4"))
    trained = [
        t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != IGNORE_INDEX
    ]
    assert trained[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(trained[:-1]) == " 4"


def test_long_cpt_text_is_cut_into_max_length_pieces(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = "Revenue rose 12% year over year. " * 40
    pieces = tokenize_text(tokenizer, text, max_length=32)
    assert len(pieces) > 3 and all(len(piece["input_ids"]) <= 32 for piece in pieces)
    assert pieces[-1]["input_ids"][-1] == tokenizer.eos_token_id
    assert all(piece["labels"] == piece["input_ids"] for piece in pieces)


@pytest.mark.parametrize("ratio", [1.0, 2.0, 10.0])
def test_cpt_sft_downsamples_cpt_to_the_ratio_of_the_instruction_tokens(
    tokenizer, ratio: float
) -> None:  # type: ignore[no-untyped-def]
    data = JobData(
        cpt_texts=[f"Filing number {i} reports revenue." for i in range(10)],
        instructions=[InstructionExample(prompt=f"Q{i}?", completion=f" A{i}") for i in range(3)],
    )
    mixed = language_modeling_rows(
        tokenizer, method="cpt_sft", data=data, max_length=64, cpt_ratio=ratio, seed=1
    )
    counts = mixed.counts
    all_cpt_tokens = sum(len(tokenizer(text)["input_ids"]) + 1 for text in data.cpt_texts)
    budget = min(ratio * counts["instruction_tokens"], all_cpt_tokens)
    longest_text = max(len(tokenizer(text)["input_ids"]) + 1 for text in data.cpt_texts)
    assert budget <= counts["cpt_tokens"] < budget + longest_text
    assert counts["cpt_texts"] == counts["cpt_sequences"]  # short texts: one piece each
    assert counts["instruction_examples"] == 3
    assert len(mixed.rows) == counts["cpt_sequences"] + 3
    again = language_modeling_rows(
        tokenizer, method="cpt_sft", data=data, max_length=64, cpt_ratio=ratio, seed=1
    )
    assert again.rows == mixed.rows  # seeded


def test_preference_rows_use_one_format(tokenizer) -> None:  # type: ignore[no-untyped-def]
    rows = [
        {"prompt": "Q?", "chosen": "A", "rejected": "B"},
        {
            "prompt": [{"role": "user", "content": "Q2?"}],
            "chosen": [{"role": "assistant", "content": "A2"}],
            "rejected": [{"role": "assistant", "content": "B2"}],
            "kind": "fap",
        },
    ]
    chat = preference_rows(rows, chat=True)
    assert chat[0]["prompt"] == [{"role": "user", "content": "Q?"}]
    assert chat[1]["chosen"] == [{"role": "assistant", "content": "A2"}]
    assert set(chat[1]) == {"prompt", "chosen", "rejected"}
    assert preference_rows(rows, chat=False)[1] == {
        "prompt": "Q2?",
        "chosen": "A2",
        "rejected": "B2",
    }


def test_packed_examples_do_not_attend_to_each_other(tiny_model_dir: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    """The packed forward pass gives each example the logits it gets alone (as SFTTrainer calls
    the model: position ids restarting per example, no attention mask, no cache)."""
    from datasets import Dataset

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    rows = [
        tokenize_instruction(
            tokenizer, InstructionExample(prompt="Q: bond prices?", completion=" fall")
        ),
        {"input_ids": tokenizer("Free cash flow equals")["input_ids"]} | {"labels": []},
    ]
    rows[1]["labels"] = rows[1]["input_ids"]
    packed = pack_dataset(Dataset.from_list(rows), seq_length=64, strategy="bfd")
    assert len(packed) == 1
    batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)([packed[0]])
    assert "attention_mask" not in batch
    with torch.no_grad():
        packed_logits = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits[0]
        lengths = packed[0]["seq_lengths"]
        start = 0
        for length in lengths:
            ids = batch["input_ids"][0, start : start + length]
            alone = model(input_ids=ids[None]).logits[0]
            torch.testing.assert_close(
                packed_logits[start : start + length], alone, atol=1e-5, rtol=1e-4
            )
            start += length
    # Each example's first token is never a target of the previous one.
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
    assert all(batch["labels"][0, s] == IGNORE_INDEX for s in starts)
