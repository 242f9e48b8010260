"""Whether the rule verifier can check answers against a reference: the API refuses rollouts
it could not verify. It reads the reference exactly as the rule judge does."""

from __future__ import annotations

from app.kernel.answers import (
    answers_match,
    distinct_answers,
    extract_final_answers,
    parse_choice,
    parse_quantity,
    reference_final_answer,
)


def rule_verifiable(reference: str) -> bool:
    """Whether a reference states a choice letter or a number, which the rule can check."""
    choice = parse_choice(reference_final_answer(reference))
    return choice.letter is not None or parse_quantity(choice.value) is not None


def rule_verdict(answer: str, reference: str) -> str | None:
    """The rule verifier's final-answer verdict ("correct" / "wrong", as workers/rule_judge.py
    gives it), or None where the reference is not checkable by rule."""
    if not rule_verifiable(reference):
        return None
    finals = distinct_answers(extract_final_answers(answer))
    if len(finals) != 1:
        return "wrong"
    return "correct" if answers_match(finals[0], reference_final_answer(reference)) else "wrong"
