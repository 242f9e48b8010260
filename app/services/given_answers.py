"""Checks on answers sent with a prompt (judged instead of sampled) and their gold labels."""

from __future__ import annotations

from typing import Any

from app.kernel.errors import InvalidInputError
from app.kernel.steps import segment_steps
from app.schemas.batch import PromptIn


def check_given_answers(prompts: list[PromptIn], *, max_answers: int) -> None:
    """Refuse given answers no judge could be measured on: too many, gold without a reference,
    or a gold first wrong step the answer does not have."""
    for position, prompt in enumerate(prompts):
        if prompt.answers is None:
            continue
        field = prompt.where(position, "answers")  # a JSONL upload names the file line
        if len(prompt.answers) > max_answers:
            raise InvalidInputError(
                f"{field}: at most {max_answers} answers per prompt (MAX_SAMPLES_PER_PROMPT), "
                f"got {len(prompt.answers)}"
            )
        for index, answer in enumerate(prompt.answers):
            gold = answer.gold
            if gold is None:
                continue
            if prompt.reference_answer is None or not prompt.reference_answer.strip():
                raise InvalidInputError(
                    f"{field}[{index}].gold: a gold label needs the prompt's reference_answer, "
                    "which the judge compares against"
                )
            step = gold.first_wrong_step
            if step is not None and step > (count := len(segment_steps(answer.text))):
                raise InvalidInputError(
                    f"{field}[{index}].gold.first_wrong_step: step {step} is outside the answer, "
                    f"which has {count} step(s) (numbered as GET /samples shows them; the "
                    "Answer line is not a step)"
                )


def stored_answers(prompt: PromptIn) -> list[dict[str, Any]] | None:
    """A prompt's given answers as its row keeps them, for the worker to judge."""
    if prompt.answers is None:
        return None
    return [
        {"text": answer.text, "gold": None if answer.gold is None else answer.gold.stored()}
        for answer in prompt.answers
    ]
