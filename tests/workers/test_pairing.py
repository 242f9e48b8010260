"""Building FAP and SCP preference pairs and filtering them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest

from app.kernel.pairing import (
    JudgedSample,
    PairCandidate,
    StepCorrection,
    build_fap_pairs,
    build_scp_pairs,
    filter_pairs,
    scp_prompt_text,
)

QUESTION = (
    "A bond has a coupon of 6% and a yield of 5%. It trades:\n"
    "A. at a discount\nB. at par\nC. at a premium"
)


def _samples(*verdicts: str | None) -> list[JudgedSample]:
    return [JudgedSample(i, f"answer {i} ({v})", v) for i, v in enumerate(verdicts, start=10)]


def _ids(pairs: list[PairCandidate]) -> list[tuple[int | None, int]]:
    return [(p.chosen_sample_id, p.rejected_sample_id) for p in pairs]


def test_fap_pair_holds_question_and_full_answers() -> None:
    samples = [
        JudgedSample(1, "Step 1: Coupon above yield.\nAnswer: C", "correct"),
        JudgedSample(2, "Step 1: Coupon below yield.\nAnswer: A", "wrong"),
    ]

    (pair,) = build_fap_pairs(QUESTION, samples)

    assert pair.kind == "fap"
    assert pair.prompt == [{"role": "user", "content": QUESTION}]
    assert pair.chosen == [
        {"role": "assistant", "content": "Step 1: Coupon above yield.\nAnswer: C"}
    ]
    assert pair.rejected == [
        {"role": "assistant", "content": "Step 1: Coupon below yield.\nAnswer: A"}
    ]
    assert (pair.chosen_sample_id, pair.rejected_sample_id) == (1, 2)


def test_fap_pair_hash_is_sha256_of_canonical_json() -> None:
    (pair,) = build_fap_pairs(QUESTION, _samples("correct", "wrong"))

    canonical = json.dumps(
        ["fap", pair.prompt, pair.chosen, pair.rejected],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert pair.content_hash == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert len(pair.content_hash) == 64


def test_round_robin_pairs_each_wrong_answer_once_cycling_through_correct_ones() -> None:
    samples = _samples("wrong", "correct", "wrong", None, "correct", "wrong", "wrong")

    pairs = build_fap_pairs(QUESTION, samples)

    assert _ids(pairs) == [(11, 10), (14, 12), (11, 15), (14, 16)]


def test_round_robin_respects_the_cap() -> None:
    pairs = build_fap_pairs(
        QUESTION, _samples("correct", "wrong", "wrong", "wrong"), max_pairs_per_prompt=2
    )

    assert _ids(pairs) == [(10, 11), (10, 12)]


def test_all_strategy_pairs_every_correct_with_every_wrong() -> None:
    pairs = build_fap_pairs(
        QUESTION, _samples("correct", "correct", "wrong", "wrong"), strategy="all"
    )

    assert sorted(_ids(pairs)) == [(10, 12), (10, 13), (11, 12), (11, 13)]
    assert _ids(pairs)[:2] == [(10, 12), (11, 13)]


def test_all_strategy_is_capped_and_keeps_pairs_spread_over_samples() -> None:
    samples = _samples("correct", "correct", "correct", "wrong", "wrong", "wrong")

    pairs = build_fap_pairs(QUESTION, samples, strategy="all", max_pairs_per_prompt=4)

    assert _ids(pairs) == [(10, 13), (11, 14), (12, 15), (11, 13)]


@pytest.mark.parametrize(
    "verdicts",
    [("correct", "correct"), ("wrong", "wrong", None), (None, None), ()],
)
def test_no_pairs_without_both_a_correct_and_a_wrong_answer(
    verdicts: tuple[str | None, ...],
) -> None:
    assert build_fap_pairs(QUESTION, _samples(*verdicts)) == []
    assert build_fap_pairs(QUESTION, _samples(*verdicts), strategy="all") == []


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"strategy: must be one of \('round_robin', 'all'\), got 'best'"
    ):
        build_fap_pairs(QUESTION, _samples("correct", "wrong"), strategy="best")


def test_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_pairs_per_prompt: must be at least 1, got 0"):
        build_fap_pairs(QUESTION, _samples("correct", "wrong"), max_pairs_per_prompt=0)


def test_scp_prompt_shows_the_reasoning_so_far() -> None:
    text = scp_prompt_text("What is EPS?", "Step 1: EPS is net income over shares.\n")

    assert text == (
        "What is EPS?\n\nReasoning so far:\nStep 1: EPS is net income over shares.\n\n"
        "Write only the next step."
    )


def test_scp_prompt_with_empty_prefix_asks_for_the_first_step() -> None:
    assert scp_prompt_text("What is EPS?", "  ") == (
        "What is EPS?\n\nNo reasoning steps have been written yet. Write only the first step."
    )


def test_scp_pairs_prefer_the_correction_over_the_wrong_step() -> None:
    correction = StepCorrection(
        sample_id=7,
        correct_prefix="Step 1: EPS is net income over shares.\n",
        wrong_step="Step 2: 20 / 50 = 0.4.",
        correction="Step 2: 50 / 20 = 2.5.",
    )

    (pair,) = build_scp_pairs("What is EPS?", [correction])

    assert pair.kind == "scp"
    assert pair.prompt == [
        {"role": "user", "content": scp_prompt_text("What is EPS?", correction.correct_prefix)}
    ]
    assert pair.chosen == [{"role": "assistant", "content": "Step 2: 50 / 20 = 2.5."}]
    assert pair.rejected == [{"role": "assistant", "content": "Step 2: 20 / 50 = 0.4."}]
    assert (pair.chosen_sample_id, pair.rejected_sample_id) == (None, 7)


def test_scp_and_fap_pairs_with_the_same_texts_hash_differently() -> None:
    fap = build_fap_pairs("Q", [JudgedSample(1, "a", "correct"), JudgedSample(2, "b", "wrong")])
    scp = build_scp_pairs("Q", [StepCorrection(2, "", "b", "a")])

    assert fap[0].content_hash != scp[0].content_hash


class _Counter:
    """Counts tokens as whitespace-separated words and remembers each call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> list[int]:
        self.calls.append(texts)
        return [len(text.split()) for text in texts]


def _fap_pair(chosen: str, rejected: str, question: str = "q1 q2") -> PairCandidate:
    samples = [JudgedSample(1, chosen, "correct"), JudgedSample(2, rejected, "wrong")]
    return build_fap_pairs(question, samples)[0]


def test_filter_pairs_drops_equal_duplicate_and_too_long_pairs() -> None:
    keep = _fap_pair("a b c", "d e")
    equal = _fap_pair("Step 1: same  text\n", "Step 1: same text")
    duplicate = _fap_pair("a b c", "d e")
    too_long = _fap_pair("a b c d e f", "g")
    counter = _Counter()

    kept, dropped = filter_pairs(
        [keep, equal, duplicate, too_long], count_tokens=counter, max_pair_tokens=5
    )

    assert kept == [replace(keep, token_count=5)]  # "q1 q2" + the longer "a b c"
    assert dropped == {"equal": 1, "duplicate": 1, "too_long": 1}
    assert counter.calls == [["q1 q2", "a b c", "d e", "q1 q2", "a b c d e f", "g"]]


def test_filter_pairs_measures_the_longer_side_plus_the_prompt() -> None:
    pair = _fap_pair("a", "b c d")

    assert filter_pairs([pair], count_tokens=_Counter(), max_pair_tokens=5)[0] == [
        replace(pair, token_count=5)
    ]
    assert filter_pairs([pair], count_tokens=_Counter(), max_pair_tokens=4)[1]["too_long"] == 1


def test_filter_pairs_without_candidates_counts_nothing() -> None:
    counter = _Counter()

    kept, dropped = filter_pairs([], count_tokens=counter, max_pair_tokens=10)

    assert kept == []
    assert dropped == {"equal": 0, "duplicate": 0, "too_long": 0}
    assert counter.calls == []
