"""Whether the rule verifier can check answers against a reference: a conservative reading
the API uses to refuse rollouts it could not verify (the worker's verifier reads more forms)."""

from __future__ import annotations

import re

_DECLARED = re.compile(
    r"^\W*(?:the\s+)?(?:final\s+|correct\s+|right\s+)?answer\s*(?:is)?\s*[:：]?\s*(?P<value>.+)$",
    re.IGNORECASE,
)
_LETTER_IS_CORRECT = re.compile(
    r"^[*_]*(?:option\s+|choice\s+)?\(?[A-J]\)?[*_]*\s+is\s+(?:the\s+)?(?:correct|right)\b",
    re.IGNORECASE,
)
_LETTER = re.compile(r"^(?:option\s+|choice\s+)?(?:\([A-J]\)|[A-J](?:$|[.:)]))", re.IGNORECASE)
_NUMBER = re.compile(
    r"^[-+−]?\s*(?:us\$|usd|eur|gbp|[$€£¥₹])?\s*[-+−]?\d[\d,]*(?:\.\d+)?"
    r"\s*(?:%|percent|k|thousand|m|mm|mn|million|b|bn|billion|x|times|years?)?\.?$",
    re.IGNORECASE,
)


def stated_final_answer(reference: str) -> str:
    """The reference's final answer: its last "Answer: X" line, else its first line."""
    lines = [line.strip() for line in reference.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        declared = _DECLARED.match(line)
        if declared is not None:
            return declared["value"].strip(" *_")
    return lines[0] if lines else ""


def rule_verifiable(reference: str) -> bool:
    """Whether a reference states a choice letter or a number, which the rule can check."""
    if _LETTER_IS_CORRECT.match(reference.strip()):
        return True
    final = stated_final_answer(reference)
    return bool(_LETTER.match(final) or _NUMBER.match(final.replace(" ", "")))
