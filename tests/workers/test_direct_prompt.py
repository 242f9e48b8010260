"""The answer prompt follows the batch's prompt version: step by step, or the answer only."""

from __future__ import annotations

from workers.prompts.policy import build_answer_messages, build_policy_messages


def test_direct_prompt_shows_answers_without_steps_and_ends_with_the_question() -> None:
    messages = build_answer_messages("What is 2 + 2?", "direct-v1")
    assert messages[-1] == {"role": "user", "content": "What is 2 + 2?"}
    examples = [m["content"] for m in messages if m["role"] == "assistant"]
    assert examples == ["Answer: C", "Answer: 2.5"]
    assert "Write nothing else" in messages[0]["content"]


def test_policy_prompt_is_the_step_by_step_one() -> None:
    assert build_answer_messages("q", "policy-v1") == build_policy_messages("q")
    steps = [m["content"] for m in build_policy_messages("q") if m["role"] == "assistant"]
    assert all(text.startswith("Step 1:") for text in steps)
