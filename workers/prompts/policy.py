"""The prompt that makes the policy answer in numbered steps ending in one "Answer:" line."""

from __future__ import annotations

from workers.engines.base import Message
from workers.prompts.direct import DIRECT_PROMPT_VERSION, build_direct_messages
from workers.prompts.few_shot import few_shot_messages

POLICY_PROMPT_VERSION = "policy-v1"

_SYSTEM = (
    "You are a careful finance tutor. Solve the question step by step. Write each step on its "
    'own line, starting with "Step 1:", "Step 2:" and so on. After the last step, write one '
    'final line "Answer: <final answer>": the option letter for a multiple-choice question, '
    "the number for a calculation. Write nothing after the Answer line."
)

# Small models (SmolLM2-135M) follow the format only when they see it, so two short examples.
_EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "A bond has a coupon rate of 6% and a yield to maturity of 5%. The bond trades:\n"
        "A. at a discount\nB. at par\nC. at a premium",
        "Step 1: The coupon rate (6%) is higher than the yield to maturity (5%).\n"
        "Step 2: A bond that pays more than the market yield is worth more than its face value.\n"
        "Step 3: So the bond trades at a premium, which is option C.\n"
        "Answer: C",
    ),
    (
        "A company has net income of $50 million and 20 million shares outstanding. "
        "What is its earnings per share, in dollars?",
        "Step 1: Earnings per share is net income divided by shares outstanding.\n"
        "Step 2: 50 million / 20 million = 2.5.\n"
        "Answer: 2.5",
    ),
)


def build_policy_messages(question: str) -> list[Message]:
    """System instructions, two worked examples as prior turns, then the question."""
    return few_shot_messages(_SYSTEM, _EXAMPLES, question)


def build_answer_messages(question: str, prompt_version: str) -> list[Message]:
    """The conversation a policy answers in, by the batch's prompt version: step by step
    (policy-v1), or the final answer only (direct-v1, direct-answer evaluations)."""
    if prompt_version == DIRECT_PROMPT_VERSION:
        return build_direct_messages(question)
    return build_policy_messages(question)
