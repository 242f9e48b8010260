"""A conversation that shows the model the answer format before the question: system
instructions, worked examples as prior turns, then the question."""

from __future__ import annotations

from collections.abc import Sequence

from workers.engines.base import Message


def few_shot_messages(
    system: str, examples: Sequence[tuple[str, str]], question: str
) -> list[Message]:
    messages: list[Message] = [{"role": "system", "content": system}]
    for example_question, example_answer in examples:
        messages.append({"role": "user", "content": example_question})
        messages.append({"role": "assistant", "content": example_answer})
    messages.append({"role": "user", "content": question})
    return messages
