"""A deterministic final-answer judge for answers checkable by rule (letters, numbers)."""

from __future__ import annotations

from app.kernel.answers import (
    answers_match,
    distinct_answers,
    extract_final_answers,
    reference_final_answer,
)
from workers.prompts.fap import FapResult

RULE_PROMPT_VERSION = "rule-v1"


def judge_by_rule(answer: str, reference_answer: str) -> FapResult:
    """FAP verdict by rule: exactly one declared final answer that matches the reference."""
    finals = distinct_answers(extract_final_answers(answer))
    if not finals:
        return _wrong("The response declares no final answer.", "")
    if len(finals) > 1:
        listed = "; ".join(finals)
        return _wrong(
            f"The response declares {len(finals)} different final answers: {listed}.", listed
        )
    candidate, reference = finals[0], reference_final_answer(reference_answer)
    if answers_match(candidate, reference):
        why = f"The final answer {candidate!r} matches the reference answer {reference!r}."
        return FapResult("parsed", "correct", why, candidate, None)
    return _wrong(
        f"The final answer {candidate!r} does not match the reference answer {reference!r}.",
        candidate,
    )


def _wrong(justification: str, extracted: str) -> FapResult:
    """A "wrong" verdict with its reason."""
    return FapResult("parsed", "wrong", justification, extracted, None)
