"""Canned engines whose wrong answers go wrong at different steps, so the sample viewer has a
first error with an empty correct prefix and one with a two-line prefix to mark."""

from __future__ import annotations

import json

from tests.workers.canned_engines import RIGHT, WRONG, CannedJudge, CannedPolicy
from workers.engines.base import Completion, Generation, Message, SamplingParams, schemas_for

WRONG_AT_STEP_2 = "Step 1: 2 + 2 makes 4.\nStep 2: 4 + 1 makes 5, so option A.\nAnswer: A"
STEP_2_CORRECTION = "Step 2: 4 is option B."
ANSWERS = (RIGHT, WRONG, RIGHT, WRONG_AT_STEP_2)
"""Answer i of every question is ANSWERS[i % 4]."""


class StepwisePolicy(CannedPolicy):
    """Answers right, wrong at step 1, right, wrong at step 2, and again."""

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        self.calls.append(len(conversations))
        texts = [ANSWERS[i % len(ANSWERS)] for i in range(params.n)]
        return [
            Generation(prompt_tokens=20, completions=[Completion(t, 12) for t in texts])
            for _ in conversations
        ]


class StepwiseJudge(CannedJudge):
    """CannedJudge's final-answer verdicts; picks the step that really is the first wrong one."""

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        schema = schemas_for(params, len(conversations))[0] or {}
        if "first_wrong_step" not in schema.get("properties", {}):
            return super().generate(conversations, params)
        self.calls.append(len(conversations))
        replies = []
        for conversation in conversations:
            at_step_2 = "4 + 1 makes 5" in conversation[-1]["content"]
            reply = {
                "justification": "4 is option B, not A." if at_step_2 else "2 + 2 is 4, not 5.",
                "first_wrong_step": 2 if at_step_2 else 1,
                "correction": STEP_2_CORRECTION if at_step_2 else "2 + 2 makes 4.",
            }
            replies.append(json.dumps(reply))
        return [
            Generation(prompt_tokens=50, completions=[Completion(text, 30)]) for text in replies
        ]
