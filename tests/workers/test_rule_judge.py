"""The deterministic final-answer judge."""

from __future__ import annotations

import pytest

from workers.prompts.fap import FapResult
from workers.rule_judge import RULE_PROMPT_VERSION, judge_by_rule

MC_CORRECT = (
    "Step 1: The coupon rate (6%) is above the yield to maturity (5%).\n"
    "Step 2: So the bond is worth more than its face value.\n"
    "Answer: C"
)


def test_rule_version() -> None:
    assert RULE_PROMPT_VERSION == "rule-v1"


def test_matching_letter_is_correct() -> None:
    result = judge_by_rule(MC_CORRECT, "C")

    assert result == FapResult(
        outcome="parsed",
        verdict="correct",
        justification="The final answer 'C' matches the reference answer 'C'.",
        extracted_answer="C",
        reason=None,
    )


def test_letter_matches_a_reference_with_option_text() -> None:
    result = judge_by_rule("Step 1: Premium.\n**Answer:** (c)", "C. at a premium")

    assert (result.verdict, result.extracted_answer) == ("correct", "c")


def test_number_within_tolerance_is_correct() -> None:
    answer = "Step 1: 1000 * 1.05 * 1.05 = 1102.5.\nAnswer: $1,102.50"

    result = judge_by_rule(answer, "1102.5")

    assert (result.outcome, result.verdict, result.extracted_answer) == (
        "parsed",
        "correct",
        "$1,102.50",
    )


def test_different_number_is_wrong() -> None:
    answer = "Step 1: 1000 * 0.05 = 50.\nStep 2: 1000 + 50 = 1050.\nAnswer: 1050"

    result = judge_by_rule(answer, "1102.50")

    assert result == FapResult(
        "parsed",
        "wrong",
        "The final answer '1050' does not match the reference answer '1102.50'.",
        "1050",
        None,
    )


def test_default_tolerance_is_a_tenth_of_a_percent_of_the_reference() -> None:
    # 1100 (simple interest) is 0.2% off 1102.50 (compound): a different method, so wrong.
    answer = "Step 1: 1000 * 0.05 * 2 = 100.\nStep 2: 1000 + 100 = 1100.\nAnswer: 1100"

    assert judge_by_rule(answer, "1102.50").verdict == "wrong"
    assert judge_by_rule(answer.replace("1100", "1102.4"), "1102.50").verdict == "correct"


def test_reference_with_explanation_is_reduced_to_its_final_answer() -> None:
    reference = "Compounding twice: 1,000 x 1.05^2 = 1,102.50.\nAnswer: 1102.50"

    result = judge_by_rule("Step 1: 1000 * 1.1025 = 1102.5.\nThe answer is 1102.5.", reference)

    assert result.verdict == "correct"
    assert result.justification == (
        "The final answer '1102.5' matches the reference answer '1102.50'."
    )


def test_no_final_answer_is_wrong() -> None:
    answer = "Step 1: The coupon is above the yield.\nStep 2: So the bond trades at a"

    result = judge_by_rule(answer, "C")

    assert result == FapResult(
        "parsed", "wrong", "The response declares no final answer.", "", None
    )


def test_two_different_final_answers_are_wrong() -> None:
    answer = "Step 1: The answer is A.\nStep 2: Actually no.\nAnswer: C"

    result = judge_by_rule(answer, "C")

    assert result == FapResult(
        "parsed",
        "wrong",
        "The response declares 2 different final answers: A; C.",
        "A; C",
        None,
    )


@pytest.mark.parametrize(
    "answer",
    [
        "Step 1: Premium.\nTherefore, the answer is C.\nAnswer: C",
        "Step 1: Premium.\nThe answer is (C).\nAnswer: C. at a premium",
    ],
)
def test_repeating_the_same_final_answer_counts_once(answer: str) -> None:
    result = judge_by_rule(answer, "C")

    assert (result.verdict, result.extracted_answer) == ("correct", "C")
