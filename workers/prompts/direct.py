"""The prompt of a direct-answer evaluation: the final answer only, no reasoning."""

from __future__ import annotations

from workers.engines.base import Message
from workers.prompts.few_shot import few_shot_messages

DIRECT_PROMPT_VERSION = "direct-v1"

_SYSTEM = (
    "You are a careful finance expert. Answer the question with one line "
    '"Answer: <final answer>": the option letter for a multiple-choice question, the number '
    "for a calculation. Write nothing else."
)

# The same two worked examples as the step-by-step prompt, answered directly: small models
# follow the format only when they see it.
_EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "A bond has a coupon rate of 6% and a yield to maturity of 5%. The bond trades:\n"
        "A. at a discount\nB. at par\nC. at a premium",
        "Answer: C",
    ),
    (
        "A company has net income of $50 million and 20 million shares outstanding. "
        "What is its earnings per share, in dollars?",
        "Answer: 2.5",
    ),
)


def build_direct_messages(question: str) -> list[Message]:
    """System instructions, two directly answered examples as prior turns, then the question."""
    return few_shot_messages(_SYSTEM, _EXAMPLES, question)
