"""Segmenting answers into steps, extracting final answers, and matching answers."""

from __future__ import annotations

import pytest

from app.kernel.answers import (
    Step,
    answers_match,
    extract_final_answers,
    final_answer_spans,
    normalize_answer,
    reference_final_answer,
    segment_steps,
    split_step_marker,
)

SMOL_STEPS = """To solve this, we look at the bond.

Step 1: The coupon rate is 5% and the yield is 6%.
Step 2: Since the yield is higher than the coupon, the bond trades at a premium.
This is because investors pay more for it.
Step 3: Therefore the price is above par.
Answer: C"""

SMOL_RAMBLING = """Step 1: The interest is 1000 * 0.05 = 50.
Step 1: The total is 1000 + 50 = 1100.
Step 3: So the value after one year is 1100.
Answer: 1100

Question: What is the future value of $500 at 4%?"""


def _texts(steps: list[Step]) -> list[str]:
    return [step.text for step in steps]


def test_segment_steps_splits_on_step_labels_and_keeps_continuation_lines() -> None:
    steps = segment_steps(SMOL_STEPS)

    assert [s.number for s in steps] == [1, 2, 3]
    assert _texts(steps) == [
        "Step 1: The coupon rate is 5% and the yield is 6%.",
        "Step 2: Since the yield is higher than the coupon, the bond trades at a premium.\n"
        "This is because investors pay more for it.",
        "Step 3: Therefore the price is above par.",
    ]
    assert all(SMOL_STEPS[s.start : s.end] == s.text for s in steps)


def test_segment_steps_skips_preamble_before_first_label() -> None:
    steps = segment_steps(SMOL_STEPS)

    assert steps[0].start == SMOL_STEPS.index("Step 1:")


def test_segment_steps_renumbers_and_ignores_text_after_the_answer_line() -> None:
    steps = segment_steps(SMOL_RAMBLING)

    assert [s.number for s in steps] == [1, 2, 3]
    assert steps[1].text == "Step 1: The total is 1000 + 50 = 1100."
    assert steps[-1].text == "Step 3: So the value after one year is 1100."


def test_segment_steps_understands_numbered_lists() -> None:
    answer = (
        "1. Duration measures price sensitivity.\n"
        "2) A 1% rise in yield lowers the price by about 7%.\n"
        "   That is 7 x 1%.\n"
        "Final answer: 7%"
    )

    steps = segment_steps(answer)

    assert _texts(steps) == [
        "1. Duration measures price sensitivity.",
        "2) A 1% rise in yield lowers the price by about 7%.\n   That is 7 x 1%.",
    ]


def test_segment_steps_does_not_take_decimal_numbers_for_labels() -> None:
    answer = "Step 1: The rate is\n1.5% per month.\n2.5 years pass.\nAnswer: A"

    steps = segment_steps(answer)

    assert _texts(steps) == ["Step 1: The rate is\n1.5% per month.\n2.5 years pass."]


def test_segment_steps_accepts_markdown_labels() -> None:
    answer = "**Step 1:** Find the cash flows.\n### Step 2: Discount them.\n**Answer:** B"

    steps = segment_steps(answer)

    assert _texts(steps) == ["**Step 1:** Find the cash flows.", "### Step 2: Discount them."]


def test_segment_steps_without_labels_uses_lines_of_a_single_paragraph() -> None:
    answer = (
        "First, we calculate the interest: 1000 * 0.05 = 50.\n"
        "Then we add it to the principal: 1000 + 50 = 1050.\n"
        "The answer is 1050."
    )

    steps = segment_steps(answer)

    assert _texts(steps) == [
        "First, we calculate the interest: 1000 * 0.05 = 50.",
        "Then we add it to the principal: 1000 + 50 = 1050.",
    ]
    assert [s.number for s in steps] == [1, 2]


def test_segment_steps_without_labels_uses_paragraphs_when_there_are_several() -> None:
    answer = (
        "The current ratio is current assets over current liabilities.\n"
        "Here that is 300 / 200.\n\n"
        "So the current ratio is 1.5.\n\n"
        "Answer: 1.5"
    )

    steps = segment_steps(answer)

    assert _texts(steps) == [
        "The current ratio is current assets over current liabilities.\nHere that is 300 / 200.",
        "So the current ratio is 1.5.",
    ]


def test_segment_steps_keeps_the_answer_is_sentence_when_not_on_the_last_line() -> None:
    answer = "The answer is B because rates rose.\nRates rose by 1%."

    assert _texts(segment_steps(answer)) == [
        "The answer is B because rates rose.",
        "Rates rose by 1%.",
    ]


def test_segment_steps_treats_a_labelled_answer_line_as_the_final_answer() -> None:
    answer = "Step 1: Price is 98.\nStep 2: Answer: B"

    assert _texts(segment_steps(answer)) == ["Step 1: Price is 98."]


def test_segment_steps_of_empty_or_answer_only_text_is_empty() -> None:
    assert segment_steps("") == []
    assert segment_steps("  \n\n") == []
    assert segment_steps("Answer: B") == []


def test_final_answer_spans_point_at_the_answer_line() -> None:
    spans = final_answer_spans(SMOL_STEPS)

    assert [SMOL_STEPS[s:e] for s, e in spans] == ["Answer: C"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Step 3: The price is 98.", ("Step 3: ", "The price is 98.")),
        ("**Step 2:** Discount.", ("**Step 2:** ", "Discount.")),
        ("2) Discount.", ("2) ", "Discount.")),
        ("Discount the flows.", ("", "Discount the flows.")),
        ("1.5% is the rate.", ("", "1.5% is the rate.")),
    ],
)
def test_split_step_marker(text: str, expected: tuple[str, str]) -> None:
    assert split_step_marker(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Step 2: So it is B.\nAnswer: B", ["B"]),
        ("Final answer: 12.5%", ["12.5%"]),
        ("**Answer:** (C)", ["C"]),
        ("**Final Answer**: B.", ["B"]),
        ("The answer is B.", ["B"]),
        ("We get 4.5%. So, the answer is 4.5%. This uses the formula.", ["4.5%"]),
        ("Therefore the answer is B because yields rose.", ["B"]),
        ("The result is $\\boxed{42}$.", ["42"]),
        ("The final answer is $\\boxed{7}$", ["7"]),
        ("Answer: $1,102.50", ["$1,102.50"]),
        ("Answer: B. 4.5%", ["B. 4.5%"]),
        ("Answer:\n\n(A)", ["A"]),
        ("Answer: The answer is C.", ["C"]),
        ("Answer: \\boxed{\\text{C}}", ["C"]),
    ],
)
def test_extract_final_answers_cleans_each_declaration(text: str, expected: list[str]) -> None:
    assert extract_final_answers(text) == expected


def test_extract_final_answers_returns_all_declarations_in_order() -> None:
    answer = "Step 1: The answer is A.\nStep 2: No wait, it is \\boxed{B}.\nAnswer: C\nAnswer: C"

    assert extract_final_answers(answer) == ["A", "B", "C", "C"]


def test_extract_final_answers_ignores_answer_mentions_inside_sentences() -> None:
    answer = (
        "Step 1: We check whether the answer is reasonable.\n"
        "Step 2: If the answer is A, the bond is at a discount.\n"
        "Step 3: An answer choice must fit the data."
    )

    assert extract_final_answers(answer) == []


def test_extract_final_answers_of_a_rambling_small_model_answer() -> None:
    assert extract_final_answers(SMOL_RAMBLING) == ["1100"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", "B"),
        ("(b)", "B"),
        ("B.", "B"),
        ("b)", "B"),
        ("B. 4.5%", "B"),
        ("(B) 4.5%", "B"),
        ("Option B", "B"),
        ("choice c: 12%", "C"),
        ("**C**", "C"),
        ("$1,234.50", "1234.5"),
        ("1234.5", "1234.5"),
        ("12.5%", "12.5"),
        ("0.125", "0.125"),
        ("-$5", "-5"),
        ("USD 2,000", "2000"),
        ("1000", "1000"),
        ("\\boxed{42}", "42"),
        ("  The Bond trades at a Discount. ", "the bond trades at a discount"),
        ("A bond", "a bond"),
        ("4.5 years", "4.5 years"),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("candidate", "reference"),
    [
        ("B", "B"),
        ("(b)", "B"),
        ("B. 4.5%", "B"),
        ("Option B", "B"),
        ("B", "B. 4.5%"),
        ("4.5%", "B. 4.5%"),
        ("$1,234.50", "1234.5"),
        ("12.5%", "12.5"),
        ("1,102.5", "$1,102.50"),
        ("4.52", "4.5"),
        ("0", "0.0"),
        ("at a discount", "At a discount."),
    ],
)
def test_answers_match(candidate: str, reference: str) -> None:
    assert answers_match(candidate, reference)


@pytest.mark.parametrize(
    ("candidate", "reference"),
    [
        ("C", "B"),
        ("C. 4.5%", "B. 4.5%"),
        ("0.125", "12.5%"),
        ("4.6", "4.5"),
        ("-5", "5"),
        ("", "B"),
        ("", ""),
        ("4.5 years", "45 years"),
        ("at a premium", "at a discount"),
        ("B", "4.5%"),
    ],
)
def test_answers_do_not_match(candidate: str, reference: str) -> None:
    assert not answers_match(candidate, reference)


def test_answers_match_tolerance_is_configurable() -> None:
    assert not answers_match("4.56", "4.5", rel_tol=1e-3)
    assert answers_match("4.6", "4.5", rel_tol=0.05)


def test_a_more_precise_answer_matches_a_rounded_reference_only_when_it_rounds_to_it() -> None:
    assert answers_match("4.52", "4.5")
    assert answers_match("12.346", "12.35")
    assert not answers_match("4.56", "4.5")
    assert not answers_match("4.5", "4.52")  # a less precise answer is not enough
    assert not answers_match("1100", "1102.50")


def test_segment_steps_keeps_a_numbered_sub_list_inside_its_step() -> None:
    answer = (
        "Step 1: List the cash flows.\n"
        "Step 2: Discount each one at 5%:\n"
        "1. Year 1: 100 / 1.05 = 95.24\n"
        "2) Year 2: 100 / 1.05^2 = 90.70\n"
        "Step 3: Add them: 95.24 + 90.70 = 185.94.\n"
        "Answer: 185.94"
    )

    steps = segment_steps(answer)

    assert [s.number for s in steps] == [1, 2, 3]
    assert steps[1].text == (
        "Step 2: Discount each one at 5%:\n"
        "1. Year 1: 100 / 1.05 = 95.24\n"
        "2) Year 2: 100 / 1.05^2 = 90.70"
    )
    assert steps[2].text == "Step 3: Add them: 95.24 + 90.70 = 185.94."


def test_a_paragraph_ending_in_its_answer_is_a_step_and_a_final_answer() -> None:
    answer = "The coupon exceeds the yield, so the bond sells at a premium. Answer: A"

    assert _texts(segment_steps(answer)) == [
        "The coupon exceeds the yield, so the bond sells at a premium."
    ]
    assert [answer[s:e] for s, e in final_answer_spans(answer)] == ["Answer: A"]
    assert extract_final_answers(answer) == ["A"]


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("C is correct. A coupon above the yield means a premium.", "C"),
        ("Option (b) is the correct answer because yields fell.", "B"),
        ("Correct answer: C", "C"),
        ("The correct answer is C because the coupon exceeds the yield.", "C"),
        ("C\n\nExplanation: the coupon rate exceeds the market yield.", "C"),
        ("1,000 x 1.05^2 = 1,102.50. Answer: 1102.50", "1102.50"),
        ("$1,102.50 (compounded annually)", "$1,102.50 (compounded annually)"),
    ],
)
def test_reference_final_answer(reference: str, expected: str) -> None:
    assert reference_final_answer(reference) == expected
