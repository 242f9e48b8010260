"""Whether the rule verifier can check answers against a reference: the API refuses rollouts
it could not verify. It reads the reference exactly as the rule judge does."""

from __future__ import annotations

from app.kernel.answers import parse_choice, parse_quantity, reference_final_answer


def rule_verifiable(reference: str) -> bool:
    """Whether a reference states a choice letter or a number, which the rule can check."""
    choice = parse_choice(reference_final_answer(reference))
    return choice.letter is not None or parse_quantity(choice.value) is not None
