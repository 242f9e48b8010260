"""Judge and policy prompts, and the tolerant parsing of judge replies."""

from __future__ import annotations

import json

import pytest

from app.kernel.answers import extract_final_answers, segment_steps
from workers.prompts.fap import (
    FAP_PROMPT_VERSION,
    FAP_SCHEMA,
    FapResult,
    build_fap_messages,
    parse_fap,
)
from workers.prompts.json_reply import extract_json_object
from workers.prompts.policy import POLICY_PROMPT_VERSION, build_policy_messages
from workers.prompts.scp import (
    SCP_PROMPT_VERSION,
    SCP_PROMPT_VERSIONS,
    SCP_SCHEMA,
    SCP_STEPS_PROMPT_VERSION,
    ScpResult,
    build_scp_messages,
    build_scp_steps_messages,
    parse_scp,
    parse_scp_steps,
    scp_steps_schema,
)

QUESTION = (
    "An investment of $1,000 earns 5% per year, compounded annually. "
    "What is it worth after 2 years?"
)
REFERENCE = "1,000 x 1.05^2 = 1,102.50. Answer: 1102.50"
WRONG_ANSWER = (
    "Step 1: The interest rate is 5%, so each year adds 5% of the value.\n"
    "Step 2: The interest for two years is 1000 * 0.05 * 2 = 100.\n"
    "Step 3: The value after two years is 1000 + 100 = 1100.\n"
    "Answer: 1100"
)
STEP_1 = "Step 1: The interest rate is 5%, so each year adds 5% of the value."
STEP_2 = "Step 2: The interest for two years is 1000 * 0.05 * 2 = 100."
FIX_2 = "Step 2: The value after two years is 1000 * 1.05 * 1.05 = 1102.50."


def _reply(**fields: object) -> str:
    return json.dumps(fields)


# --- extract_json_object -------------------------------------------------------------------


def test_extract_json_object_reads_a_fenced_block_with_prose_around() -> None:
    raw = 'Sure! Here is my verdict:\n```json\n{"verdict": "correct", "n": 1}\n```\nHope it helps.'

    assert extract_json_object(raw) == {"verdict": "correct", "n": 1}


def test_extract_json_object_skips_braces_that_do_not_parse() -> None:
    raw = 'The set {A, B} is wrong. {"verdict": "wrong", "note": "uses {x} and }"}'

    assert extract_json_object(raw) == {"verdict": "wrong", "note": "uses {x} and }"}


def test_extract_json_object_accepts_raw_newlines_inside_strings() -> None:
    raw = '{"correct_prefix": "Step 1: a\nStep 2: b", "verdict": "wrong"}'

    assert extract_json_object(raw) == {
        "correct_prefix": "Step 1: a\nStep 2: b",
        "verdict": "wrong",
    }


def test_extract_json_object_returns_the_first_object() -> None:
    assert extract_json_object('{"a": 1} then {"b": 2}') == {"a": 1}


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "The answer is correct.",
        '{"extracted_answer": "1100", "justification": "The response says 1100',
        '["correct"]',
        "{'verdict': 'correct'}",
    ],
)
def test_extract_json_object_returns_none_without_an_object(raw: str) -> None:
    assert extract_json_object(raw) is None


# --- policy prompt ---------------------------------------------------------------------------


def test_policy_messages_show_two_worked_examples_before_the_question() -> None:
    messages = build_policy_messages(QUESTION)

    assert POLICY_PROMPT_VERSION == "policy-v1"
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert messages[-1] == {"role": "user", "content": QUESTION}
    assert '"Step 1:"' in messages[0]["content"]
    assert '"Answer: <final answer>"' in messages[0]["content"]


def test_policy_examples_follow_the_format_they_teach() -> None:
    examples = [m["content"] for m in build_policy_messages(QUESTION)[2:5:2]]

    assert [extract_final_answers(e) for e in examples] == [["C"], ["2.5"]]
    for example in examples:
        lines = example.split("\n")
        steps = segment_steps(example)
        assert [s.text for s in steps] == lines[:-1]
        assert all(s.text.startswith(f"Step {s.number}: ") for s in steps)
        assert lines[-1].startswith("Answer: ")


# --- FAP -------------------------------------------------------------------------------------


def test_fap_schema_requires_all_fields_with_the_verdict_last() -> None:
    assert FAP_PROMPT_VERSION == "fap-v1"
    assert list(FAP_SCHEMA["properties"]) == ["extracted_answer", "justification", "verdict"]
    assert FAP_SCHEMA["required"] == ["extracted_answer", "justification", "verdict"]
    assert FAP_SCHEMA["properties"]["verdict"]["enum"] == ["correct", "wrong"]
    assert FAP_SCHEMA["additionalProperties"] is False


def test_fap_messages_carry_question_reference_answer_and_the_json_shape() -> None:
    messages = build_fap_messages(QUESTION, REFERENCE, WRONG_ANSWER)

    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert QUESTION in user
    assert REFERENCE in user
    assert f"<response>\n{WRONG_ANSWER}\n</response>" in user
    assert "more than one" in user
    assert '"verdict": "<correct or wrong>"' in user


def test_parse_fap_reads_a_clean_reply() -> None:
    raw = _reply(
        extracted_answer="1100",
        justification="The response gives 1100; the reference gives 1102.50.",
        verdict="wrong",
    )

    assert parse_fap(raw) == FapResult(
        outcome="parsed",
        verdict="wrong",
        justification="The response gives 1100; the reference gives 1102.50.",
        extracted_answer="1100",
        reason=None,
    )


def test_parse_fap_tolerates_fences_prose_and_verdict_case() -> None:
    raw = (
        "Let me compare the final answers.\n```json\n"
        '{"extracted_answer": "C", "justification": "Both say C.", "verdict": "Correct"}\n'
        "```"
    )

    result = parse_fap(raw)

    assert (result.outcome, result.verdict, result.extracted_answer) == ("parsed", "correct", "C")


def test_parse_fap_maps_incorrect_to_wrong() -> None:
    result = parse_fap(
        '{"extracted_answer": "A", "justification": "A is not C.", "verdict": "INCORRECT"}'
    )

    assert (result.outcome, result.verdict, result.reason) == ("parsed", "wrong", None)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("The response is correct.", "no JSON object in the reply"),
        (
            '{"extracted_answer": "1100", "justification": "1100 vs 1102.5',
            "no JSON object in the reply",
        ),
        ('{"extracted_answer": "1100", "justification": "Differs."}', "missing verdict"),
        (
            '{"justification": "Close.", "verdict": "partially correct"}',
            "invalid verdict: 'partially correct'",
        ),
        ('{"justification": "Same.", "verdict": true}', "verdict is not a string: True"),
        (
            '{"extracted_answer": "1100", "justification": "...", "verdict": "correct" | "wrong"}',
            "no JSON object in the reply",
        ),
    ],
)
def test_parse_fap_records_unparseable_replies_with_a_reason(raw: str, reason: str) -> None:
    result = parse_fap(raw)

    assert result.outcome == "unparseable"
    assert result.verdict is None
    assert result.reason == reason


def test_parse_fap_keeps_what_it_could_read_of_an_unparseable_reply() -> None:
    result = parse_fap('{"extracted_answer": "B", "justification": "Hmm.", "verdict": "maybe"}')

    assert result == FapResult("unparseable", None, "Hmm.", "B", "invalid verdict: 'maybe'")


# --- SCP, quote version ----------------------------------------------------------------------


def test_scp_versions_and_schema() -> None:
    assert SCP_PROMPT_VERSIONS == ("scp-v1", "scp-steps-v1")
    assert (SCP_PROMPT_VERSION, SCP_STEPS_PROMPT_VERSION) == SCP_PROMPT_VERSIONS
    assert SCP_SCHEMA["required"] == [
        "justification",
        "correct_prefix",
        "first_wrong_step",
        "correction",
    ]
    assert list(SCP_SCHEMA["properties"]) == SCP_SCHEMA["required"]
    assert SCP_SCHEMA["properties"]["first_wrong_step"] == {
        "anyOf": [{"type": "string"}, {"type": "null"}]
    }
    assert set(SCP_SCHEMA["properties"]) == set(SCP_SCHEMA["required"])
    assert SCP_SCHEMA["additionalProperties"] is False


def test_scp_messages_ask_for_exact_quotes_of_an_intermediate_step() -> None:
    messages = build_scp_messages(QUESTION, REFERENCE, WRONG_ANSWER)

    user = messages[1]["content"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert QUESTION in user and REFERENCE in user
    assert f"<response>\n{WRONG_ANSWER}\n</response>" in user
    assert "character for character" in user
    assert 'never the final "Answer:" line' in user
    assert '"correct_prefix": "<exact copy' in user


def test_parse_scp_returns_exact_substrings_of_the_answer() -> None:
    raw = _reply(
        correct_prefix=STEP_1 + "\n",
        first_wrong_step=STEP_2,
        correction=FIX_2,
        justification="Interest compounds, so simple interest understates the value.",
    )

    result = parse_scp(raw, WRONG_ANSWER)

    assert result == ScpResult(
        outcome="parsed",
        reason=None,
        correct_prefix=STEP_1 + "\n",
        wrong_step=STEP_2,
        correction=FIX_2,
        justification="Interest compounds, so simple interest understates the value.",
        wrong_step_number=2,
    )
    assert WRONG_ANSWER.startswith((result.correct_prefix or "?") + STEP_2)


def test_parse_scp_accepts_an_empty_prefix_when_the_first_step_is_wrong() -> None:
    answer = "  Step 1: EPS is shares divided by net income.\nStep 2: 20 / 50 = 0.4.\nAnswer: 0.4"
    raw = (
        "```json\n"
        + _reply(
            correct_prefix="",
            first_wrong_step="Step 1: EPS is shares divided by net income.",
            correction="EPS is net income divided by shares.",
            justification="The ratio is inverted.",
        )
        + "\n```"
    )

    result = parse_scp(raw, answer)

    assert result.outcome == "parsed"
    assert result.correct_prefix == "  "  # the answer's own text before the wrong step
    assert result.wrong_step == "Step 1: EPS is shares divided by net income."
    assert result.correction == "Step 1: EPS is net income divided by shares."
    assert result.wrong_step_number == 1


def test_parse_scp_treats_a_null_prefix_as_empty() -> None:
    raw = json.dumps({"correct_prefix": None, "first_wrong_step": STEP_1, "correction": "x"})

    result = parse_scp(raw, WRONG_ANSWER)

    assert (result.outcome, result.correct_prefix, result.wrong_step_number) == ("parsed", "", 1)


def test_parse_scp_accepts_a_wrong_step_quoted_without_its_label() -> None:
    raw = _reply(
        correct_prefix=STEP_1,
        first_wrong_step="The interest for two years is 1000 * 0.05 * 2 = 100.",
        correction="The value after two years is 1000 * 1.05 * 1.05 = 1102.50.",
        justification="Compounding.",
    )

    result = parse_scp(raw, WRONG_ANSWER)

    assert result.outcome == "parsed"
    assert result.wrong_step == STEP_2
    assert result.correction == FIX_2


def test_parse_scp_widens_a_wrong_step_that_is_only_part_of_a_step_to_the_whole_step() -> None:
    raw = _reply(
        correct_prefix=STEP_1 + "\nStep 2:",
        first_wrong_step="The interest for two years is 1000 * 0.05 * 2 = 100.",
        correction="The interest for two years is 1102.50 - 1000 = 102.50.",
        justification="Compounding.",
    )

    result = parse_scp(raw, WRONG_ANSWER)

    assert result.outcome == "parsed"
    assert result.correct_prefix == STEP_1 + "\n"
    assert result.wrong_step == STEP_2
    assert result.correction == "Step 2: The interest for two years is 1102.50 - 1000 = 102.50."
    assert result.wrong_step_number == 2


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {
                "correct_prefix": "Step 1: The rate is 5%, so each year adds 5% of the value.",
                "first_wrong_step": STEP_2,
                "correction": FIX_2,
            },
            "correct_prefix is not a prefix of the answer",
        ),
        (
            {
                "correct_prefix": STEP_1,
                "first_wrong_step": "Step 3: The value after two years is 1000 + 100 = 1100.",
                "correction": "Step 3: The value after two years is 1102.50.",
            },
            "first_wrong_step does not follow correct_prefix in the answer",
        ),
        (
            {
                "correct_prefix": WRONG_ANSWER.rsplit("\n", 1)[0],
                "first_wrong_step": "Answer: 1100",
                "correction": "Answer: 1102.50",
            },
            "first_wrong_step is the final-answer line, not an intermediate step",
        ),
        (
            {
                "correct_prefix": STEP_1,
                "first_wrong_step": STEP_2,
                "correction": "  step 2:  the interest for two years is 1000 * 0.05 * 2 = 100. ",
            },
            "correction is the same as first_wrong_step",
        ),
        (
            {
                "correct_prefix": STEP_1,
                "first_wrong_step": STEP_2,
                "correction": "The interest for two years is 1000 * 0.05 * 2 = 100.",
            },
            "correction is the same as first_wrong_step",
        ),
        (
            {"correct_prefix": STEP_1, "first_wrong_step": STEP_2, "correction": " "},
            "correction is empty",
        ),
        (
            {"correct_prefix": STEP_1, "first_wrong_step": "  ", "correction": FIX_2},
            "first_wrong_step is empty",
        ),
    ],
)
def test_parse_scp_rejects_quotes_that_do_not_fit_the_answer(
    fields: dict[str, str], reason: str
) -> None:
    raw = "Here is my analysis.\n" + _reply(**fields, justification="Compounding ignored.")

    result = parse_scp(raw, WRONG_ANSWER)

    assert result.outcome == "failed_validation"
    assert result.reason == reason
    assert result.correct_prefix == fields["correct_prefix"]
    assert result.wrong_step == fields["first_wrong_step"]
    assert result.justification == "Compounding ignored."
    assert result.wrong_step_number is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("The first wrong step is step 2.", "no JSON object in the reply"),
        (
            '{"correct_prefix": "Step 1: The interest rate is 5%", "first_wrong_',
            "no JSON object in the reply",
        ),
        (
            '{"correct_prefix": "", "correction": "x", "justification": "j"}',
            "missing field: first_wrong_step",
        ),
        (
            '{"first_wrong_step": "a", "correction": "x", "justification": "j"}',
            "missing field: correct_prefix",
        ),
        (
            '{"correct_prefix": "", "first_wrong_step": 2, "correction": "x"}',
            "first_wrong_step is not a string: 2",
        ),
    ],
)
def test_parse_scp_records_unreadable_replies(raw: str, reason: str) -> None:
    result = parse_scp(raw, WRONG_ANSWER)

    assert (result.outcome, result.reason) == ("unparseable", reason)
    assert result.wrong_step is None


# --- SCP, step-number version ----------------------------------------------------------------


def test_scp_steps_schema_limits_the_step_number_and_puts_justification_first() -> None:
    schema = scp_steps_schema([1, 2, 3])

    assert list(schema["properties"]) == ["justification", "first_wrong_step", "correction"]
    assert schema["properties"]["first_wrong_step"] == {
        "anyOf": [{"type": "integer", "enum": [1, 2, 3]}, {"type": "null"}]
    }
    assert schema["required"] == ["justification", "first_wrong_step", "correction"]
    assert schema["additionalProperties"] is False


def test_scp_steps_schema_does_not_cut_the_correction() -> None:
    assert scp_steps_schema([1, 2])["properties"]["correction"] == {"type": "string"}


def test_scp_steps_schema_refuses_an_answer_without_steps() -> None:
    with pytest.raises(ValueError, match=r"step_numbers: must not be empty"):
        scp_steps_schema([])


def test_scp_steps_messages_show_the_whole_answer_with_its_steps_renumbered() -> None:
    answer = "Let us see.\n1. Interest is 5% a year.\n3) Two years give 100.\nThe answer is 1100."
    steps = segment_steps(answer)

    user = build_scp_steps_messages(QUESTION, REFERENCE, answer, steps)[1]["content"]

    shown = user.split("<response>\n")[1].split("\n</response>")[0]
    assert shown == (
        "Let us see.\nStep 1: Interest is 5% a year.\nStep 2: Two years give 100.\n"
        "The answer is 1100."
    )
    assert '"first_wrong_step": <step number, or null>' in user


def test_parse_scp_steps_takes_prefix_and_wrong_step_from_the_segmentation() -> None:
    steps = segment_steps(WRONG_ANSWER)
    raw = _reply(
        justification="Step 2 uses simple interest; the question compounds annually.",
        first_wrong_step=2,
        correction="The value after two years is 1000 * 1.05 * 1.05 = 1102.50.",
    )

    result = parse_scp_steps(raw, WRONG_ANSWER, steps)

    assert result == ScpResult(
        outcome="parsed",
        reason=None,
        correct_prefix=STEP_1 + "\n",
        wrong_step=STEP_2,
        correction=FIX_2,
        justification="Step 2 uses simple interest; the question compounds annually.",
        wrong_step_number=2,
    )
    assert result.correct_prefix == WRONG_ANSWER[: steps[1].start]


def test_parse_scp_steps_accepts_the_number_as_text() -> None:
    steps = segment_steps(WRONG_ANSWER)
    raw = '```json\n{"justification": "j", "first_wrong_step": "Step 3", "correction": "1102.5"}```'

    result = parse_scp_steps(raw, WRONG_ANSWER, steps)

    assert (result.outcome, result.wrong_step_number) == ("parsed", 3)
    assert result.correction == "Step 3: 1102.5"


@pytest.mark.parametrize(
    ("fields", "outcome", "reason"),
    [
        (
            {"justification": "j", "first_wrong_step": 4, "correction": "x"},
            "failed_validation",
            "first_wrong_step 4 is not one of the steps 1..3",
        ),
        (
            {"justification": "j", "first_wrong_step": 0, "correction": "x"},
            "failed_validation",
            "first_wrong_step 0 is not one of the steps 1..3",
        ),
        (
            {
                "justification": "j",
                "first_wrong_step": 2,
                "correction": "The interest for two years is 1000 * 0.05 * 2 = 100.",
            },
            "failed_validation",
            "correction is the same as first_wrong_step",
        ),
        (
            {"justification": "j", "first_wrong_step": "second", "correction": "x"},
            "unparseable",
            "first_wrong_step is not a step number: 'second'",
        ),
        (
            {"justification": "j", "first_wrong_step": True, "correction": "x"},
            "unparseable",
            "first_wrong_step is not a step number: True",
        ),
        ({"justification": "j", "first_wrong_step": 2}, "unparseable", "missing field: correction"),
        (
            {"justification": "j", "correction": "x"},
            "unparseable",
            "missing field: first_wrong_step",
        ),
    ],
)
def test_parse_scp_steps_rejects_bad_replies(
    fields: dict[str, object], outcome: str, reason: str
) -> None:
    result = parse_scp_steps(_reply(**fields), WRONG_ANSWER, segment_steps(WRONG_ANSWER))

    assert (result.outcome, result.reason) == (outcome, reason)
    assert result.wrong_step_number is None
    assert result.justification == "j"


def test_parse_scp_steps_records_a_truncated_reply_as_unparseable() -> None:
    raw = '{"justification": "Step 2 ignores compounding, so the'

    result = parse_scp_steps(raw, WRONG_ANSWER, segment_steps(WRONG_ANSWER))

    assert result == ScpResult(
        "unparseable", "no JSON object in the reply", None, None, None, None, None
    )


def test_parse_scp_steps_records_no_step_error_when_no_step_is_wrong() -> None:
    answer = (
        "Step 1: The coupon (6%) is above the yield (5%).\n"
        "Step 2: So the bond trades at a premium, which is option C.\n"
        "Answer: B"
    )
    raw = _reply(
        justification="Both steps are right and reach C; only the final line says B.",
        first_wrong_step=None,
        correction="",
    )

    result = parse_scp_steps(raw, answer, segment_steps(answer))

    assert result == ScpResult(
        outcome="no_step_error",
        reason=None,
        correct_prefix=None,
        wrong_step=None,
        correction=None,
        justification="Both steps are right and reach C; only the final line says B.",
        wrong_step_number=None,
    )


@pytest.mark.parametrize("value", ["none", "null", "None"])
def test_parse_scp_steps_reads_no_wrong_step_written_as_text(value: str) -> None:
    raw = _reply(justification="j", first_wrong_step=value, correction="")

    result = parse_scp_steps(raw, WRONG_ANSWER, segment_steps(WRONG_ANSWER))

    assert result.outcome == "no_step_error"


def test_parse_scp_steps_keeps_a_long_correction_whole() -> None:
    answer = (
        "Step 1: The bond pays a 6% annual coupon on 1,000 face value for 3 years.\n"
        "Step 2: Discount the cash flows at 5%: 60 / 1.05 + 60 / 1.05^2 + 1060 / 1.05^2 "
        "= 57.14 + 54.42 + 961.45 = 1073.01, which is the price of the bond today.\n"
        "Answer: 1073.01"
    )
    correction = (
        "The last cash flow comes at the end of year 3, not year 2, so it is discounted three "
        "times: 60 / 1.05 = 57.14, 60 / 1.05^2 = 54.42 and 1060 / 1.05^3 = 915.67. Adding the "
        "three present values gives 57.14 + 54.42 + 915.67 = 1027.23, so the bond is priced at "
        "1027.23, a premium of 27.23 over its face value because its 6% coupon is above the 5% "
        "yield that investors require; a premium bond's price falls towards par as it nears "
        "maturity."
    )
    assert len(correction) > 400
    raw = _reply(
        justification="Year 3 is discounted as year 2.", first_wrong_step=2, correction=correction
    )

    result = parse_scp_steps(raw, answer, segment_steps(answer))

    assert result.outcome == "parsed"
    assert result.correction == "Step 2: " + correction


def test_parse_scp_steps_rejects_a_correction_far_longer_than_one_step() -> None:
    rewrite = " ".join(
        f"Step {n}: The value after year {n} is 1000 * 1.05^{n}." for n in range(2, 40)
    )
    raw = _reply(justification="j", first_wrong_step=2, correction=rewrite)

    result = parse_scp_steps(raw, WRONG_ANSWER, segment_steps(WRONG_ANSWER))

    assert result.outcome == "failed_validation"
    assert result.reason is not None
    assert result.reason.startswith(f"correction is {len(rewrite)} characters, more than one step")


def test_parse_scp_records_no_step_error_for_a_null_wrong_step() -> None:
    raw = _reply(
        justification="Every step is right; the final line picks the wrong value.",
        correct_prefix=None,
        first_wrong_step=None,
        correction=None,
    )

    result = parse_scp(raw, WRONG_ANSWER)

    assert (result.outcome, result.wrong_step, result.correction) == ("no_step_error", None, None)
    assert result.justification == "Every step is right; the final line picks the wrong value."


def _schema_and_messages(version: str) -> tuple[dict, list[dict[str, str]]]:
    """A judge schema and conversation of each prompt version, for WRONG_ANSWER."""
    if version == "fap-v1":
        return FAP_SCHEMA, build_fap_messages(QUESTION, REFERENCE, WRONG_ANSWER)
    if version == "scp-v1":
        return SCP_SCHEMA, build_scp_messages(QUESTION, REFERENCE, WRONG_ANSWER)
    steps = segment_steps(WRONG_ANSWER)
    schema = scp_steps_schema([step.number for step in steps])
    return schema, build_scp_steps_messages(QUESTION, REFERENCE, WRONG_ANSWER, steps)


@pytest.mark.parametrize(
    ("version", "decision"),
    [("fap-v1", "verdict"), ("scp-v1", "first_wrong_step"), ("scp-steps-v1", "first_wrong_step")],
)
def test_every_judge_writes_its_justification_before_its_decision(
    version: str, decision: str
) -> None:
    schema, messages = _schema_and_messages(version)

    properties = list(schema["properties"])
    assert properties.index("justification") < properties.index(decision)
    user = messages[-1]["content"]
    instructions = user[user.index("Instructions:") :]
    assert instructions.index('"justification"') < instructions.index(f'"{decision}"')
    json_shape = instructions[instructions.rindex("{") :]
    assert json_shape.index('"justification"') < json_shape.index(f'"{decision}"')


# A model's typography: curly quotes, en dashes, a non-breaking space, two spaces after a stop.
TYPESET_ANSWER = (
    "Step 1: The bond\u2019s coupon is 6% \u2013 paid once a year \u2013 on a face\u00a0value of "
    "1,000.\n"
    "Step 2: The yield is 5%.  So the bond trades at a \u201cdiscount\u201d, below 1,000.\n"
    "Step 3: Its price is therefore 950.\n"
    "Answer: 950"
)
TYPESET_STEP_1 = TYPESET_ANSWER.split("\n")[0]
TYPESET_STEP_2 = TYPESET_ANSWER.split("\n")[1]


def test_parse_scp_matches_quotes_after_normalising_quotes_dashes_and_spaces() -> None:
    raw = _reply(
        justification="A coupon above the yield means a premium.",
        correct_prefix=(
            "Step 1: The bond's coupon is 6% - paid once a year \u2014 on a face value of\n1,000."
        ),
        first_wrong_step=(
            'Step 2: The yield is 5%. So the bond trades at a "discount", below 1,000.'
        ),
        correction="Step 2: The yield is 5%, below the coupon, so the bond trades at a premium.",
    )

    result = parse_scp(raw, TYPESET_ANSWER)

    assert result.outcome == "parsed", result.reason
    assert result.correct_prefix == TYPESET_STEP_1 + "\n"
    assert result.wrong_step == TYPESET_STEP_2  # the answer's own characters, not the quote's
    assert result.wrong_step_number == 2


def test_parse_scp_extends_a_wrong_step_quote_that_ends_inside_a_step() -> None:
    raw = _reply(
        justification="The yield is fine; the conclusion is not.",
        correct_prefix=TYPESET_STEP_1,
        first_wrong_step="Step 2: The yield is 5%.",
        correction="Step 2: The yield is 5%, below the coupon, so the bond trades at a premium.",
    )

    result = parse_scp(raw, TYPESET_ANSWER)

    assert result.outcome == "parsed", result.reason
    assert result.wrong_step == TYPESET_STEP_2
    assert result.correction == (
        "Step 2: The yield is 5%, below the coupon, so the bond trades at a premium."
    )


def test_parse_scp_makes_prefix_and_wrong_step_whole_steps_when_the_prefix_ends_inside_one() -> (
    None
):
    raw = _reply(
        justification="A coupon above the yield means a premium.",
        correct_prefix=TYPESET_STEP_1 + "\nStep 2: The yield is 5%.",
        first_wrong_step="So the bond trades at a \u201cdiscount\u201d, below 1,000.",
        correction="So the bond trades at a premium, above 1,000.",
    )

    result = parse_scp(raw, TYPESET_ANSWER)

    assert result.outcome == "parsed", result.reason
    assert result.correct_prefix == TYPESET_STEP_1 + "\n"
    assert result.wrong_step == TYPESET_STEP_2
    # The correct start of the step stays on the chosen side too: both sides are whole steps.
    assert (
        result.correction
        == "Step 2: The yield is 5%.  So the bond trades at a premium, above 1,000."
    )
    assert result.wrong_step_number == 2


def test_parse_scp_does_not_repeat_a_step_start_that_the_correction_restates() -> None:
    raw = _reply(
        justification="A coupon above the yield means a premium.",
        correct_prefix=TYPESET_STEP_1 + "\nStep 2: The yield is 5%.",
        first_wrong_step="So the bond trades at a \u201cdiscount\u201d, below 1,000.",
        correction="The yield is 5%. So the bond trades at a premium, above 1,000.",
    )

    result = parse_scp(raw, TYPESET_ANSWER)

    assert (
        result.correction
        == "Step 2: The yield is 5%. So the bond trades at a premium, above 1,000."
    )


def test_parse_scp_refuses_a_correction_that_repeats_a_partial_wrong_quote() -> None:
    raw = _reply(
        justification="j",
        correct_prefix=TYPESET_STEP_1,
        first_wrong_step="Step 2: The yield is 5%.",
        correction="Step 2: The yield is 5%.",
    )

    result = parse_scp(raw, TYPESET_ANSWER)

    assert (result.outcome, result.reason) == (
        "failed_validation",
        "correction is the same as first_wrong_step",
    )


def test_parse_fap_enforces_the_schema_lengths_that_strict_servers_do_not() -> None:
    raw = _reply(
        extracted_answer="1100 " * 40,
        justification="The response adds simple interest. " * 30,
        verdict="wrong",
    )

    result = parse_fap(raw)

    assert result.verdict == "wrong"
    limits = FAP_SCHEMA["properties"]
    assert len(result.extracted_answer or "") == limits["extracted_answer"]["maxLength"]
    assert len(result.justification or "") == limits["justification"]["maxLength"]


@pytest.mark.parametrize("version", ["scp-v1", "scp-steps-v1"])
def test_parse_scp_enforces_the_justification_length(version: str) -> None:
    schema, _ = _schema_and_messages(version)
    long = "Step 2 adds simple interest where the question compounds. " * 20
    if version == "scp-v1":
        raw = _reply(
            justification=long, correct_prefix=STEP_1, first_wrong_step=STEP_2, correction=FIX_2
        )
        result = parse_scp(raw, WRONG_ANSWER)
    else:
        raw = _reply(justification=long, first_wrong_step=2, correction=FIX_2)
        result = parse_scp_steps(raw, WRONG_ANSWER, segment_steps(WRONG_ANSWER))

    assert result.outcome == "parsed"
    assert result.justification == long[: schema["properties"]["justification"]["maxLength"]]
