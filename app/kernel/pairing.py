"""Turn judged samples and first-error analyses into DPO preference pairs, and filter them:
shared by the worker (pairs from the judge) and the API (pairs rebuilt from a review)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

from app.kernel.batch_options import BatchSettings
from app.kernel.models.statuses import SampleSource

PAIRING_STRATEGIES = ("round_robin", "all")
DROP_REASONS = ("equal", "duplicate", "too_long")

Message = dict[str, str]
"""One chat message: {"role", "content"}."""


@dataclass(frozen=True)
class JudgedSample:
    """A sampled answer and its FAP verdict ("correct", "wrong", or None: never paired)."""

    sample_id: int
    text: str
    verdict: str | None


@dataclass(frozen=True)
class StepCorrection:
    """A validated first-error analysis of one wrong sample."""

    sample_id: int
    correct_prefix: str
    wrong_step: str
    correction: str


@dataclass(frozen=True)
class PairCandidate:
    """One preference pair in TRL's conversational format, before filtering."""

    kind: str  # "fap" | "scp"
    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]
    chosen_sample_id: int | None
    rejected_sample_id: int
    content_hash: str
    token_count: int | None = None
    """Prompt plus the longer side, under the policy tokenizer; set by filter_pairs."""


def build_fap_pairs(
    question: str,
    samples: list[JudgedSample],
    *,
    strategy: str = "round_robin",
    max_pairs_per_prompt: int = 16,
    context: list[Message] | None = None,
) -> list[PairCandidate]:
    """Pair correct with wrong answers of one question (round-robin, or all up to the cap);
    `context`: messages that come before the question in the pair's prompt."""
    if strategy not in PAIRING_STRATEGIES:
        raise ValueError(f"strategy: must be one of {PAIRING_STRATEGIES}, got {strategy!r}")
    if max_pairs_per_prompt < 1:
        raise ValueError(f"max_pairs_per_prompt: must be at least 1, got {max_pairs_per_prompt}")
    corrects = [s for s in samples if s.verdict == "correct"]
    wrongs = [s for s in samples if s.verdict == "wrong"]
    if not corrects or not wrongs:
        return []
    rounds = 1 if strategy == "round_robin" else len(corrects)
    matches = islice(_rotations(corrects, wrongs, rounds), max_pairs_per_prompt)
    prompt = [*(context or []), _message("user", question)]
    return [
        _pair("fap", prompt, good.text, bad.text, good.sample_id, bad.sample_id)
        for good, bad in matches
    ]


def scp_prompt_text(question: str, correct_prefix: str) -> str:
    """The SCP prompt: question, correct reasoning so far, and a request for the next step."""
    prefix = correct_prefix.strip()
    if not prefix:
        return f"{question}\n\nNo reasoning steps have been written yet. Write only the first step."
    return f"{question}\n\nReasoning so far:\n{prefix}\n\nWrite only the next step."


def build_scp_pairs(
    question: str, corrections: list[StepCorrection], *, context: list[Message] | None = None
) -> list[PairCandidate]:
    """One pair per first-error analysis: corrected step chosen over the wrong step;
    `context`: messages that come before the request for the next step."""
    return [
        _pair(
            "scp",
            [*(context or []), _message("user", scp_prompt_text(question, c.correct_prefix))],
            c.correction,
            c.wrong_step,
            None,
            c.sample_id,
        )
        for c in corrections
    ]


def filter_pairs(
    pairs: list[PairCandidate],
    *,
    count_tokens: Callable[[list[str]], list[int]],
    max_pair_tokens: int,
) -> tuple[list[PairCandidate], dict[str, int]]:
    """Drop equal, duplicate and over-long pairs; return the kept ones (with their token count)
    and the drops per reason."""
    survivors, dropped = drop_equal_and_duplicates(pairs)
    if not survivors:
        return [], dropped
    texts = [t for p in survivors for t in (_text(p.prompt), _text(p.chosen), _text(p.rejected))]
    counts = count_tokens(texts)
    kept = []
    for index, pair in enumerate(survivors):
        prompt, chosen, rejected = counts[3 * index : 3 * index + 3]
        if prompt + max(chosen, rejected) > max_pair_tokens:
            dropped["too_long"] += 1
        else:
            kept.append(replace(pair, token_count=prompt + max(chosen, rejected)))
    return kept, dropped


def drop_equal_and_duplicates(
    pairs: list[PairCandidate],
) -> tuple[list[PairCandidate], dict[str, int]]:
    """The pairs whose chosen and rejected differ, each content once; the drops per reason."""
    dropped = dict.fromkeys(DROP_REASONS, 0)
    seen: set[str] = set()
    survivors = []
    for pair in pairs:
        if _squash(_text(pair.chosen)) == _squash(_text(pair.rejected)):
            dropped["equal"] += 1
        elif pair.content_hash in seen:
            dropped["duplicate"] += 1
        else:
            seen.add(pair.content_hash)
            survivors.append(pair)
    return survivors, dropped


def content_hash(
    kind: str, prompt: list[Message], chosen: list[Message], rejected: list[Message]
) -> str:
    """sha256 hex of the canonical JSON of [kind, prompt, chosen, rejected]."""
    canonical = json.dumps(
        [kind, prompt, chosen, rejected], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _rotations(
    corrects: list[JudgedSample], wrongs: list[JudgedSample], rounds: int
) -> Iterator[tuple[JudgedSample, JudgedSample]]:
    """Correct x wrong matches, one rotation per round, so a cap keeps the pairs spread out."""
    for shift in range(rounds):
        for index, wrong in enumerate(wrongs):
            yield corrects[(index + shift) % len(corrects)], wrong


def _pair(
    kind: str,
    prompt: list[Message],
    chosen_text: str,
    rejected_text: str,
    chosen_id: int | None,
    rejected_id: int,
) -> PairCandidate:
    """A pair with its content hash."""
    chosen, rejected = [_message("assistant", chosen_text)], [_message("assistant", rejected_text)]
    digest = content_hash(kind, prompt, chosen, rejected)
    return PairCandidate(kind, prompt, chosen, rejected, chosen_id, rejected_id, digest)


def _message(role: str, content: str) -> Message:
    """One chat message."""
    return {"role": role, "content": content}


def _text(messages: list[Message]) -> str:
    """The contents of a message list, one after another."""
    return "\n".join(m["content"] for m in messages)


def _squash(text: str) -> str:
    """Text with whitespace collapsed, for equality checks."""
    return " ".join(text.split())


def pair_columns(
    batch_id: str, prompt_id: int, pair: PairCandidate, provenance: dict[str, Any]
) -> dict[str, Any]:
    """A pair as a row of preference_pairs (the worker's pairs and a review's alike)."""
    return {
        "batch_id": batch_id,
        "prompt_id": prompt_id,
        "kind": pair.kind,
        "prompt": pair.prompt,
        "chosen": pair.chosen,
        "rejected": pair.rejected,
        "chosen_sample_id": pair.chosen_sample_id,
        "rejected_sample_id": pair.rejected_sample_id,
        "content_hash": pair.content_hash,
        "token_count": pair.token_count,
        "provenance": provenance,
    }


def model_provenance(options: BatchSettings, *, given: bool) -> dict[str, Any]:
    """Where a pair's answers come from: given ones, or the policy's (named); and its judge."""
    policy, judge = options.policy, options.judge
    return {
        "source": SampleSource.GIVEN if given else SampleSource.POLICY,
        "policy_model": None if given else policy.model,
        "policy_engine": None if given else policy.engine,
        "policy_prompt_version": None if given else policy.prompt_version,
        "judge_model": judge.model,
        "judge_engine": judge.engine,
    }
