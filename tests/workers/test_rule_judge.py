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


STEPS = "Step 1: Read the question.\nStep 2: Work it out.\n"
"""Two reasoning steps that decide nothing, in front of a final line under test."""

# (answer, reference, verdict): how real answers and references are worded.
RULE_CASES = [
    # Letters.
    pytest.param(STEPS + "Answer: C", "C", "correct", id="letter"),
    pytest.param(STEPS + "**Answer:** (c)", "C. at a premium", "correct", id="letter-paren-lower"),
    pytest.param(STEPS + "Answer: c)", "C", "correct", id="letter-close-paren"),
    pytest.param(STEPS + "ANSWER: B", "b", "correct", id="letter-case"),
    pytest.param(STEPS + "Final Answer: Option D", "D", "correct", id="letter-option"),
    pytest.param(STEPS + "Therefore, the answer is (B).", "B", "correct", id="letter-answer-is"),
    pytest.param(STEPS + "My final answer is C.", "C", "correct", id="letter-my-final-answer"),
    pytest.param(STEPS + "Answer: C. At a premium", "C", "correct", id="letter-with-text"),
    pytest.param(STEPS + "Answer: C \u2013 at a premium", "C", "correct", id="letter-dash-text"),
    pytest.param(
        STEPS + "Answer: B, because the yield is above the coupon.",
        "B",
        "correct",
        id="letter-comma-because",
    ),
    pytest.param(
        STEPS + "Answer: B since the yield is above the coupon",
        "B",
        "correct",
        id="letter-since",
    ),
    pytest.param(
        "The coupon exceeds the yield, so the bond sells at a premium. Answer: A",
        "A",
        "correct",
        id="letter-single-paragraph",
    ),
    pytest.param(
        "The coupon exceeds the yield, so the bond sells at a premium. Answer: A",
        "B",
        "wrong",
        id="letter-single-paragraph-wrong",
    ),
    pytest.param(STEPS + "Answer: \\boxed{\\text{B}}", "B", "correct", id="letter-boxed-text"),
    pytest.param(STEPS + "$\\boxed{C}$", "C", "correct", id="letter-boxed-last-line"),
    pytest.param(STEPS + "Answer: B", "B. 4.5%", "correct", id="letter-vs-reference-option"),
    pytest.param(STEPS + "Answer: 4.5%", "B. 4.5%", "correct", id="value-vs-reference-option"),
    pytest.param(STEPS + "Answer: 5.5%", "B. 4.5%", "wrong", id="value-vs-other-option"),
    pytest.param(STEPS + "Answer: A or B", "A", "wrong", id="letter-two-options"),
    pytest.param(STEPS + "Answer: A, C", "A", "wrong", id="letter-two-options-comma"),
    pytest.param(STEPS + "Answer: B (or possibly C)", "B", "wrong", id="letter-hedged"),
    # References in their many wordings.
    pytest.param(
        STEPS + "Answer: C",
        "C is correct. A coupon above the yield means a premium.",
        "correct",
        id="reference-x-is-correct",
    ),
    pytest.param(
        STEPS + "Answer: B",
        "C is correct. A coupon above the yield means a premium.",
        "wrong",
        id="reference-x-is-correct-wrong",
    ),
    pytest.param(
        STEPS + "Answer: C", "Correct answer: C", "correct", id="reference-correct-answer"
    ),
    pytest.param(STEPS + "Answer: B", "Correct answer: C", "wrong", id="reference-correct-wrong"),
    pytest.param(
        STEPS + "Answer: C",
        "The correct answer is C because the coupon exceeds the yield.",
        "correct",
        id="reference-the-correct-answer-is",
    ),
    pytest.param(
        STEPS + "Answer: C",
        "(C) At a premium, since the coupon rate exceeds the market yield.",
        "correct",
        id="reference-letter-explained",
    ),
    pytest.param(
        STEPS + "Answer: C",
        "C\n\nExplanation: the coupon rate exceeds the market yield.",
        "correct",
        id="reference-letter-then-explanation",
    ),
    pytest.param(
        STEPS + "Answer: 1102.50",
        "Answer: 1,102.50\nExplanation: interest compounds twice.",
        "correct",
        id="reference-answer-line",
    ),
    pytest.param(
        STEPS + "Answer: 1102.5",
        "$1,102.50 (compounded annually)",
        "correct",
        id="reference-number-with-remark",
    ),
    # Numbers, currency, thousands separators.
    pytest.param(STEPS + "Answer: $2.50 per share", "2.5", "correct", id="currency-per-share"),
    pytest.param(STEPS + "Answer: 2", "2", "correct", id="integer"),
    pytest.param(STEPS + "Answer: 2.0", "2", "correct", id="integer-with-decimal"),
    pytest.param(STEPS + "Answer: 2.4", "2", "wrong", id="integer-reference-is-exact"),
    pytest.param(STEPS + "Answer: 5.3%", "5%", "wrong", id="integer-percent-is-exact"),
    pytest.param(STEPS + "Answer: 1,102.50", "$1,102.50", "correct", id="thousands-currency"),
    pytest.param(STEPS + "Answer: 1100", "1102.50", "wrong", id="other-method"),
    pytest.param(STEPS + "Answer: 1,103", "1102.50", "correct", id="within-tolerance"),
    pytest.param(STEPS + "Answer: 4.52", "4.5", "correct", id="rounds-to-reference"),
    pytest.param(STEPS + "Answer: 4.45", "4.5", "correct", id="rounds-half-up"),
    pytest.param(STEPS + "Answer: 4.56", "4.5", "wrong", id="rounds-elsewhere"),
    pytest.param(STEPS + "Answer: 1,234", "1.234", "wrong", id="thousands-vs-decimal"),
    pytest.param(STEPS + "Answer: 12,500", "12500", "correct", id="thousands"),
    pytest.param(STEPS + "Answer: 1,234,567.89", "1234567.89", "correct", id="millions"),
    pytest.param(
        STEPS + "Answer: \\boxed{12{,}500}", "12,500", "correct", id="latex-thousands-separator"
    ),
    pytest.param(STEPS + "Answer: USD 2,000", "$2,000", "correct", id="currency-code-first"),
    pytest.param(STEPS + "Answer: 2,000 USD", "$2,000", "correct", id="currency-code-last"),
    pytest.param(STEPS + "Answer: approximately $1,103", "1102.50", "correct", id="approximately"),
    pytest.param(STEPS + "Answer: \u2248 7.2", "7.2", "correct", id="approx-sign"),
    pytest.param(
        STEPS + "Answer: 1,102.50, using annual compounding",
        "1102.5",
        "correct",
        id="number-comma-explanation",
    ),
    # Percentages.
    pytest.param(STEPS + "Answer: 12.5%", "12.5", "correct", id="percent-vs-plain"),
    pytest.param(STEPS + "Answer: 0.125", "12.5%", "wrong", id="fraction-vs-percent"),
    pytest.param(STEPS + "Answer: 12.5 percent", "12.5%", "correct", id="percent-word"),
    pytest.param(STEPS + "Answer: \\boxed{7.5\\%}", "7.5%", "correct", id="percent-boxed"),
    pytest.param(STEPS + "Answer: about 4.5%", "4.5%", "correct", id="percent-about"),
    pytest.param(STEPS + "Answer: 50 bps", "0.5%", "correct", id="basis-points"),
    pytest.param(STEPS + "Answer: 50 basis points", "0.6%", "wrong", id="basis-points-wrong"),
    # Negatives.
    pytest.param(STEPS + "Answer: (1,234)", "-1234", "correct", id="accounting-negative"),
    pytest.param(STEPS + "Answer: (1,234)", "1234", "wrong", id="accounting-negative-sign"),
    pytest.param(STEPS + "Answer: -$5,000", "($5,000)", "correct", id="negative-currency"),
    pytest.param(STEPS + "Answer: \u22123.2%", "-3.2%", "correct", id="unicode-minus"),
    pytest.param(STEPS + "Answer: -5", "5", "wrong", id="negative-vs-positive"),
    pytest.param(STEPS + "Answer: $-5", "-5", "correct", id="sign-after-currency"),
    pytest.param(STEPS + "Answer: (12.5%)", "-12.5%", "correct", id="accounting-negative-percent"),
    pytest.param(STEPS + "Answer: (2)", "2", "correct", id="item-number-in-parentheses"),
    pytest.param(
        "The final answer is $\\boxed{-12.5\\%}$", "-12.5%", "correct", id="negative-boxed"
    ),
    # Units and scales.
    pytest.param(STEPS + "Answer: 4.5 years", "4.5", "correct", id="unit-vs-plain"),
    pytest.param(STEPS + "Answer: 4.5 years", "4.5 months", "wrong", id="unit-differs"),
    pytest.param(STEPS + "Answer: 4.5 years", "45 years", "wrong", id="unit-same-value-differs"),
    pytest.param(STEPS + "Answer: 4.5 yrs", "4.5 years", "correct", id="unit-abbreviated"),
    pytest.param(STEPS + "Answer: $2.5 million", "2,500,000", "correct", id="scale-million"),
    pytest.param(STEPS + "Answer: 2.5 billion", "2.5 million", "wrong", id="scale-differs"),
    pytest.param(STEPS + "Answer: 1.5x", "1.5", "correct", id="multiple"),
    pytest.param(STEPS + "Answer: 5 months", "5 million", "wrong", id="unit-vs-scale"),
    pytest.param(STEPS + "Answer: 4.5% or 5%", "4.5%", "wrong", id="number-with-alternative"),
    pytest.param(STEPS + "Answer: $\\$2.50$", "2.5", "correct", id="latex-dollar"),
    pytest.param(STEPS + "Answer: \\( \\boxed{1{,}050} \\)", "1050", "correct", id="latex-paren"),
    # Ranges.
    pytest.param(STEPS + "Answer: 4%\u20135%", "4% to 5%", "correct", id="range-dash-vs-to"),
    pytest.param(STEPS + "Answer: 3 to 5 years", "3-5 years", "correct", id="range-units"),
    pytest.param(STEPS + "Answer: between 4% and 5%", "4.5%", "wrong", id="range-vs-point"),
    pytest.param(STEPS + "Answer: 4.5%", "4%-5%", "wrong", id="point-vs-range"),
    pytest.param(STEPS + "Answer: 4% to 6%", "4%-5%", "wrong", id="range-differs"),
    # Text.
    pytest.param(STEPS + "Answer: At a premium.", "at a premium", "correct", id="text"),
    pytest.param(STEPS + "Answer: At a discount", "At a premium", "wrong", id="text-differs"),
    pytest.param(
        STEPS + "Answer: U.S. Treasury bonds", "U.S. Treasury bonds", "correct", id="text-initials"
    ),
    # Several final answers, or a reasoning line that only sounds like one.
    pytest.param(
        "Step 1: The rate lies in a band.\nStep 2: So the answer is likely between 4% and 5%.\n"
        "Step 3: Interpolating gives 4.6%.\nAnswer: 4.6%",
        "4.6%",
        "correct",
        id="hedged-reasoning-line",
    ),
    pytest.param(
        "Step 1: The answer is not A, since A ignores taxes.\nAnswer: B",
        "B",
        "correct",
        id="negated-reasoning-line",
    ),
    pytest.param(
        STEPS + "Answer: 4.5%\nStep 3: Check again.\nAnswer: 5%",
        "5%",
        "wrong",
        id="two-final-answers",
    ),
    pytest.param(STEPS + "Answer: B\n\\boxed{C}", "C", "wrong", id="answer-and-boxed-differ"),
    pytest.param(STEPS + "So \\boxed{4.5}.\nAnswer: 4.5", "4.5", "correct", id="boxed-and-answer"),
    pytest.param(STEPS + "Answer: C\nAnswer: C", "C", "correct", id="same-answer-twice"),
    # No final answer.
    pytest.param(STEPS + "So the bond trades at a premium.", "C", "wrong", id="no-final-answer"),
    pytest.param("Step 1: The price is 98.", "98", "wrong", id="number-without-declaration"),
    pytest.param("", "B", "wrong", id="empty"),
    pytest.param(STEPS + "Answer:", "B", "wrong", id="empty-declaration"),
]


@pytest.mark.parametrize(("answer", "reference", "verdict"), RULE_CASES)
def test_rule_verdicts_on_real_world_wording(answer: str, reference: str, verdict: str) -> None:
    result = judge_by_rule(answer, reference)

    assert (result.outcome, result.verdict) == ("parsed", verdict), result.justification


def test_the_rule_table_covers_at_least_sixty_cases() -> None:
    assert len(RULE_CASES) >= 60
