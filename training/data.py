"""A training job's data: read from uploaded files and frozen datasets, shaped for TRL.

Language-modelling methods (cpt, sft, cpt_sft) get one pre-tokenized dataset with `input_ids` and
`labels` (-100 where no loss is taken): CPT text trains on every token, instruction examples on
their response tokens only. DPO gets prompt/chosen/rejected rows in one format (conversational
when the tokenizer has a chat template).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IGNORE_INDEX = -100

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class InstructionExample:
    """A prompt and the response to train on: both chat messages, or both plain text."""

    prompt: Messages | str
    completion: Messages | str


@dataclass
class JobData:
    cpt_texts: list[str] = field(default_factory=list)
    instructions: list[InstructionExample] = field(default_factory=list)
    preferences: list[dict[str, Any]] = field(default_factory=list)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def instruction_from_sft_line(line: dict[str, Any]) -> InstructionExample:
    """An sft file line: `messages` trains on the last assistant turn; or `prompt`/`completion`."""
    messages = line.get("messages")
    if messages is None:
        return InstructionExample(prompt=line["prompt"], completion=line["completion"])
    last = max(i for i, message in enumerate(messages) if message["role"] == "assistant")
    return InstructionExample(prompt=messages[:last], completion=[messages[last]])


def instruction_from_pair(pair: dict[str, Any]) -> InstructionExample:
    """A preference pair's prompt and chosen answer (rejection-sampling fine-tuning)."""
    return InstructionExample(prompt=pair["prompt"], completion=pair["chosen"])


def as_messages(value: Messages | str, role: str) -> Messages:
    return [{"role": role, "content": value}] if isinstance(value, str) else value


def as_text(value: Messages | str) -> str:
    return value if isinstance(value, str) else "\n".join(m["content"] for m in value)


def preference_rows(rows: Iterable[dict[str, Any]], *, chat: bool) -> list[dict[str, Any]]:
    """prompt/chosen/rejected in one format: messages for a chat model, plain text otherwise."""
    if chat:
        return [
            {
                "prompt": as_messages(row["prompt"], "user"),
                "chosen": as_messages(row["chosen"], "assistant"),
                "rejected": as_messages(row["rejected"], "assistant"),
            }
            for row in rows
        ]
    return [{key: as_text(row[key]) for key in ("prompt", "chosen", "rejected")} for row in rows]


# --- tokenization -------------------------------------------------------------------------------


def _ids(encoded: Any) -> list[int]:
    """apply_chat_template(tokenize=True) gives a list or a BatchEncoding, by version."""
    if isinstance(encoded, list):
        return encoded
    return list(encoded["input_ids"])


def tokenize_text(tokenizer: Any, text: str, *, max_length: int) -> list[dict[str, list[int]]]:
    """CPT: the text plus EOS, cut into pieces of at most max_length tokens, loss on every token."""
    ids = tokenizer(text, add_special_tokens=True)["input_ids"] + [tokenizer.eos_token_id]
    return [
        {"input_ids": ids[start : start + max_length], "labels": ids[start : start + max_length]}
        for start in range(0, len(ids), max_length)
        if len(ids[start : start + max_length]) > 1
    ]


def tokenize_instruction(tokenizer: Any, example: InstructionExample) -> dict[str, list[int]]:
    """Prompt and response tokens; labels keep the response tokens only."""
    if isinstance(example.prompt, str) or isinstance(example.completion, str):
        prompt_ids = tokenizer(as_text(example.prompt), add_special_tokens=True)["input_ids"]
        completion_ids = tokenizer(as_text(example.completion), add_special_tokens=False)[
            "input_ids"
        ] + [tokenizer.eos_token_id]
    else:
        prompt_ids = _ids(
            tokenizer.apply_chat_template(example.prompt, add_generation_prompt=True, tokenize=True)
        )
        full_ids = _ids(
            tokenizer.apply_chat_template(example.prompt + example.completion, tokenize=True)
        )
        if full_ids[: len(prompt_ids)] != prompt_ids:
            raise ValueError(
                "the chat template renders the prompt differently with the response appended; "
                "cannot tell the response tokens apart"
            )
        completion_ids = full_ids[len(prompt_ids) :]
    return {
        "input_ids": prompt_ids + completion_ids,
        "labels": [IGNORE_INDEX] * len(prompt_ids) + completion_ids,
    }


@dataclass(frozen=True)
class LanguageModelingSet:
    rows: list[dict[str, list[int]]]
    groups: list[str]
    """Per row, the question (instruction prompt) or CPT text it came from: the eval split keeps
    each group on one side."""
    counts: dict[str, int]


def question_key(prompt: Messages | str) -> str:
    """What makes two examples the same question: the prompt's user turns, or its text."""
    if isinstance(prompt, str):
        return prompt.strip()
    user_turns = [message["content"] for message in prompt if message["role"] == "user"]
    return "\n".join(user_turns or [message["content"] for message in prompt]).strip()


def text_key(text: str) -> str:
    return "text:" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def cpt_pieces(
    tokenizer: Any, texts: list[str], *, max_length: int
) -> tuple[list[dict[str, list[int]]], list[str]]:
    """Every text cut into max_length pieces, each with its text's group."""
    rows: list[dict[str, list[int]]] = []
    groups: list[str] = []
    for text in texts:
        pieces = tokenize_text(tokenizer, text, max_length=max_length)
        rows += pieces
        groups += [text_key(text)] * len(pieces)
    return rows, groups


def cpt_pieces_up_to(
    tokenizer: Any, texts: list[str], *, max_length: int, token_budget: int, rng: random.Random
) -> tuple[list[dict[str, list[int]]], list[str], int]:
    """Pieces of randomly drawn texts until they hold `token_budget` tokens (at least one piece);
    the last text drawn may give only some of its pieces. Also the number of texts drawn."""
    order = list(range(len(texts)))
    rng.shuffle(order)
    rows: list[dict[str, list[int]]] = []
    groups: list[str] = []
    tokens = texts_drawn = 0
    for index in order:
        if tokens >= token_budget:
            break
        texts_drawn += 1
        for piece in tokenize_text(tokenizer, texts[index], max_length=max_length):
            if tokens >= token_budget:
                break
            rows.append(piece)
            groups.append(text_key(texts[index]))
            tokens += len(piece["input_ids"])
    return rows, groups, texts_drawn


def language_modeling_rows(
    tokenizer: Any,
    *,
    method: str,
    data: JobData,
    max_length: int,
    cpt_ratio: float,
    seed: int,
) -> LanguageModelingSet:
    """Tokenized rows for cpt, sft or cpt_sft, shuffled with the seed.

    cpt_sft mixes by size: CPT pieces (texts cut to max_length) are drawn until they hold
    `cpt_ratio` times the instruction examples' tokens (the paper's 1:1 mix at 1.0).
    """
    rng = random.Random(seed)
    texts = data.cpt_texts if method in ("cpt", "cpt_sft") else []
    instructions = data.instructions if method in ("sft", "cpt_sft") else []
    instruction_rows = [tokenize_instruction(tokenizer, example) for example in instructions]
    instruction_tokens = sum(len(row["input_ids"]) for row in instruction_rows)
    texts_drawn = len(texts)
    if method == "cpt_sft":
        rows, groups, texts_drawn = cpt_pieces_up_to(
            tokenizer,
            texts,
            max_length=max_length,
            token_budget=max(1, round(cpt_ratio * instruction_tokens)),
            rng=rng,
        )
    else:
        rows, groups = cpt_pieces(tokenizer, texts, max_length=max_length)
    cpt_rows = len(rows)
    cpt_tokens = sum(len(row["input_ids"]) for row in rows)
    rows += instruction_rows
    groups += [question_key(example.prompt) for example in instructions]
    order = list(range(len(rows)))
    rng.shuffle(order)
    counts = {
        "cpt_texts_available": len(data.cpt_texts) if texts else 0,
        "cpt_texts": texts_drawn,
        "cpt_sequences": cpt_rows,
        "cpt_tokens": cpt_tokens,
        "instruction_examples": len(instructions),
        "instruction_tokens": instruction_tokens,
        "tokens": cpt_tokens + instruction_tokens,
        "loss_tokens": sum(sum(label != IGNORE_INDEX for label in row["labels"]) for row in rows),
    }
    return LanguageModelingSet(
        rows=[rows[i] for i in order], groups=[groups[i] for i in order], counts=counts
    )


def split_by_group(
    groups: list[str], *, eval_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Row indices to train on and to evaluate on, each group wholly on one side.

    Groups drawn at random (with the seed) are held out until they hold at least `eval_fraction`
    of the rows; at least one group always trains. One group only: nothing is held out.
    """
    everything = list(range(len(groups)))
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    if eval_fraction <= 0 or len(members) < 2:
        return everything, []
    order = sorted(members)
    random.Random(seed).shuffle(order)
    target = math.ceil(len(groups) * eval_fraction)
    held_out: set[int] = set()
    for group in order[:-1]:
        if len(held_out) >= target:
            break
        held_out.update(members[group])
    return [i for i in everything if i not in held_out], sorted(held_out)
