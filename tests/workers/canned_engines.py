"""Canned-text stand-ins for models, for tests of the code around the model (not engines)."""

from __future__ import annotations

import json

from workers.engines.base import Completion, Generation, Message, SamplingParams, schemas_for

RIGHT = "Step 1: 2 + 2 makes 4.\nStep 2: Option B is 4.\nAnswer: B"
WRONG = "Step 1: 2 + 2 makes 5.\nStep 2: Option A is 5.\nAnswer: A"
CORRECTION = "Step 1: 2 + 2 makes 4."


class CannedPolicy:
    """Alternates a right and a wrong answer to every question; counts its calls."""

    model_name = "canned-policy"
    supports_json_schema = False

    def __init__(self) -> None:
        self.calls: list[int] = []

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        self.calls.append(len(conversations))
        texts = [RIGHT if i % 2 == 0 else WRONG for i in range(params.n)]
        return [
            Generation(prompt_tokens=20, completions=[Completion(t, 12) for t in texts])
            for _ in conversations
        ]

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(text.split()) for text in texts]


CUT = "Step 1: 2 + 2 makes 4.\nStep 2: Option B is"
"""A right answer cut at max_tokens before its final line."""


class CuttingPolicy(CannedPolicy):
    """Like CannedPolicy, but its third answer to every question runs into max_tokens."""

    model_name = "cutting-policy"

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        self.calls.append(len(conversations))
        completions = [Completion(RIGHT, 12), Completion(WRONG, 12)]
        completions.append(Completion(CUT, params.max_tokens, finish_reason="length"))
        return [
            Generation(prompt_tokens=20, completions=completions[: params.n]) for _ in conversations
        ]


class CannedJudge:
    """Judges like a perfect judge would on CannedPolicy's answers, in the schemas' JSON."""

    model_name = "canned-judge"
    supports_json_schema = True

    def __init__(self) -> None:
        self.calls: list[int] = []

    def generate(
        self, conversations: list[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        self.calls.append(len(conversations))
        replies = []
        for conversation, schema in zip(
            conversations, schemas_for(params, len(conversations)), strict=True
        ):
            shown = conversation[-1]["content"]
            if "first_wrong_step" in (schema or {}).get("properties", {}):
                reply = {
                    "justification": "2 + 2 is 4, not 5.",
                    "first_wrong_step": 1,
                    "correction": CORRECTION,
                }
            else:
                wrong = "makes 5" in shown
                reply = {
                    "extracted_answer": "A" if wrong else "B",
                    "justification": "Compared with the reference B.",
                    "verdict": "wrong" if wrong else "correct",
                }
            replies.append(json.dumps(reply))
        return [
            Generation(prompt_tokens=50, completions=[Completion(text, 30)]) for text in replies
        ]

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(text.split()) for text in texts]
