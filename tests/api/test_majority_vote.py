"""Majority vote in an evaluation report: one answer written several ways is one answer (a number
as `12`, `12.0`, `$1,200.00`), so it is not split into minorities that each lose the vote."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.kernel.models import Batch, Chunk, Prompt, Sample, Verdict
from app.services.eval_report import evaluation_report
from tests.conftest import project_id

# Per question: the final answers its samples gave (in sample order) and which are right.
# Before, each spelling was its own vote: every question tied at one vote and the first
# answer, the wrong one, won.
QUESTIONS = [
    [("13", False), ("12", True), ("12.0", True)],
    [("1300", False), ("$1,200.00", True), ("1200", True)],
    [("-0.50", False), ("7 %", True), ("7", True)],
    [("c", False), ("(b)", True), ("b", True)],  # not a number: spellings stay apart
]


def store_judged(session_factory: sessionmaker[Session], project: str) -> str:
    with session_factory.begin() as session:
        batch = Batch(
            project_id=project,
            status="completed",
            kind="evaluation",
            policy={},
            judge={},
            pairing={},
            total_prompts=len(QUESTIONS),
            chunk_size=len(QUESTIONS),
        )
        session.add(batch)
        session.flush()
        chunk = Chunk(batch_id=batch.id, index=0, n_prompts=len(QUESTIONS), status="succeeded")
        session.add(chunk)
        session.flush()
        for index, answers in enumerate(QUESTIONS):
            prompt = Prompt(batch_id=batch.id, index=index, question=f"q{index}", chunk_id=chunk.id)
            session.add(prompt)
            session.flush()
            for sample_index, (final, right) in enumerate(answers):
                sample = Sample(
                    batch_id=batch.id,
                    prompt_id=prompt.id,
                    sample_index=sample_index,
                    text=f"Answer: {final}",
                    prompt_tokens=1,
                    completion_tokens=1,
                    policy_model="tiny",
                    policy_prompt_version="policy-v1",
                )
                session.add(sample)
                session.flush()
                session.add(
                    Verdict(
                        batch_id=batch.id,
                        sample_id=sample.id,
                        kind="fap",
                        outcome="parsed",
                        verdict="correct" if right else "wrong",
                        extracted_answer=final,
                        raw_output="",
                        judge_model="rule",
                        prompt_version="rule-v1",
                    )
                )
        return batch.id


def test_numbers_written_differently_vote_together(session_factory) -> None:  # type: ignore[no-untyped-def]
    batch_id = store_judged(session_factory, project_id(session_factory))
    with session_factory() as session:
        report = evaluation_report(session, batch_id, samples=3)
    assert report.overall.accuracy.value == pytest.approx(8 / 12)
    # Three numeric questions won by the two right spellings; `(b)` and `b` stay apart and the
    # tie goes to the first answer, `c`.
    assert report.overall.majority is not None
    assert report.overall.majority.value == pytest.approx(3 / 4)
