"""Answers sent with a prompt: stored as its samples (source "given") so that they are judged,
analysed and paired exactly like sampled ones."""

from __future__ import annotations

from typing import Any

from app.kernel.context import ProcessContext
from app.kernel.models import Prompt
from app.kernel.models.statuses import SampleSource
from workers import chunk_store
from workers.chunk_store import ChunkWork

GIVEN = SampleSource.GIVEN.value
"""What a given answer's sample says in place of a policy model and prompt version."""


def is_given(prompt: Prompt) -> bool:
    """Whether the prompt brought its own answers (and so is never sampled)."""
    return prompt.answers is not None


def given_sample_rows(batch_id: str, prompt: Prompt) -> list[dict[str, Any]]:
    """The sample rows of one prompt's given answers, numbered in the order they were sent."""
    return [
        {
            "batch_id": batch_id,
            "prompt_id": prompt.id,
            "sample_index": index,
            "text": answer["text"],
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "policy_model": GIVEN,
            "policy_prompt_version": GIVEN,
            "source": SampleSource.GIVEN,
            "finish_reason": None,  # not generated here: nothing was cut
            "gold": answer.get("gold"),
        }
        for index, answer in enumerate(prompt.answers or [])
    ]


def store_given_answers(context: ProcessContext, work: ChunkWork) -> None:
    """Store the chunk's given answers as samples, once (a chunk run twice inserts nothing)."""
    rows = [row for p in work.prompts if is_given(p) for row in given_sample_rows(work.batch_id, p)]
    if rows:
        context.transaction(lambda session: chunk_store.insert_samples(session, rows))
