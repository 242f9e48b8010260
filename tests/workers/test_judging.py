"""Judging a chunk's answers: what each batched judge call asks, and what it records."""

from __future__ import annotations

import json

from workers.engines.base import Completion, Generation, Message, SamplingParams, schemas_for
from workers.judging import AnswerToJudge, JudgeSettings, analyse_first_errors

QUESTION = "A bond pays a 6% coupon and yields 5%. Does it trade at a premium or a discount?"
REFERENCE = "C. At a premium"
TWO_STEPS = (
    "Step 1: The coupon (6%) is above the yield (5%).\n"
    "Step 2: So the bond trades at a discount.\n"
    "Answer: A"
)
FOUR_STEPS = (
    "Step 1: The coupon is 6% and the yield is 5%.\n"
    "Step 2: A coupon above the yield means a price above par.\n"
    "Step 3: A price above par is a discount.\n"
    "Step 4: So the bond trades at a discount.\n"
    "Answer: A"
)
RIGHT_STEPS_WRONG_LINE = (
    "Step 1: The coupon (6%) is above the yield (5%).\n"
    "Step 2: So the bond trades at a premium, option C.\n"
    "Answer: B"
)
SETTINGS = JudgeSettings(max_tokens=128, temperature=0.0, retries=1)


class StepPicker:
    """Records every call's schemas; names the last step its schema allows, or none if told to."""

    model_name = "step-picker"
    supports_json_schema = True

    def __init__(self, *, no_step_for: str = "") -> None:
        self.no_step_for = no_step_for
        self.schemas: list[list[dict | None]] = []
        self.prompts: list[str] = []

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        schemas = schemas_for(params, len(conversations))
        self.schemas.append(schemas)
        self.prompts += [conversation[-1]["content"] for conversation in conversations]
        replies = []
        for conversation, schema in zip(conversations, schemas, strict=True):
            allowed = (schema or {})["properties"]["first_wrong_step"]["anyOf"][0]["enum"]
            no_step = bool(self.no_step_for) and self.no_step_for in conversation[-1]["content"]
            reply = {
                "justification": "Only the final line is wrong." if no_step else "Inverted.",
                "first_wrong_step": None if no_step else allowed[-1],
                "correction": "" if no_step else "So the bond trades at a premium.",
            }
            completion = Completion(json.dumps(reply), 5)
            replies.append(Generation(prompt_tokens=10, completions=[completion]))
        return replies

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(text.split()) for text in texts]


def _answers(*texts: str) -> list[AnswerToJudge]:
    return [AnswerToJudge(i, QUESTION, REFERENCE, text) for i, text in enumerate(texts, start=1)]


def _step_numbers(schema: dict | None) -> list[int]:
    return (schema or {})["properties"]["first_wrong_step"]["anyOf"][0]["enum"]


def test_each_answer_gets_its_own_step_numbers_in_one_batched_call() -> None:
    judge = StepPicker()

    judged = analyse_first_errors(
        judge, _answers(TWO_STEPS, FOUR_STEPS), SETTINGS, prompt_version="scp-steps-v1"
    )

    assert len(judge.schemas) == 1  # one engine call for both answers
    assert [_step_numbers(schema) for schema in judge.schemas[0]] == [[1, 2], [1, 2, 3, 4]]
    assert [item.result.wrong_step_number for item in judged] == [2, 4]
    assert judged[0].result.wrong_step == "Step 2: So the bond trades at a discount."


def test_a_judge_that_finds_no_wrong_step_records_no_step_error_and_no_step() -> None:
    judge = StepPicker(no_step_for="option C")

    judged = analyse_first_errors(
        judge,
        _answers(RIGHT_STEPS_WRONG_LINE, TWO_STEPS),
        SETTINGS,
        prompt_version="scp-steps-v1",
    )

    first, second = (item.result for item in judged)
    assert (first.outcome, first.wrong_step, first.correction) == ("no_step_error", None, None)
    assert first.justification == "Only the final line is wrong."
    assert second.outcome == "parsed"
    # The judge saw the final line that makes the answer wrong.
    assert "\nAnswer: B\n</response>" in judge.prompts[0]
