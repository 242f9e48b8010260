"""Step labels as data: every judged answer of a batch (or behind a dataset's pairs) in TRL's
stepwise-supervision format, `prompt`, `completions` (the steps), `labels` (one bool per step).

A correct answer labels every step true. A wrong answer labels its steps true up to its first
wrong step, false at it, and drops the later ones (nothing is known of steps after an error).
Which first wrong step counts follows the batch's scp_method: the judge's, the rollouts', or
(consensus) only one both name. A wrong answer without a located wrong step (the analysis
failed, found none, or judge and rollouts disagree), a truncated or unparseable one, and an
answer without steps are left out: a label there would be a guess.

A reviewed answer's labels come from its newest review instead (a person's gold label counts
over the judge's): the same rule, with the review's final answer and first wrong step, so a
review that calls the answer wrong without naming a step leaves it out as the judge's would.
Its row says `"reviewed": true` and `"label_source": "review"`. A dataset's rows are frozen with
it: only reviews stored before the dataset was made count, as only the pairs it froze do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import and_, or_, select, true
from sqlalchemy.orm import Session, aliased, sessionmaker

from app.kernel.consensus import agreement
from app.kernel.models import (
    Batch,
    Dataset,
    DatasetPair,
    PreferencePair,
    Prompt,
    Review,
    Sample,
    Verdict,
)
from app.kernel.models.statuses import ROLLOUT_VERDICT, SignalKind, VerdictOutcome
from app.kernel.steps import segment_steps, split_step_marker

ROWS_PER_PAGE = 1000
"""Answers read per page; each page in a short session of its own (no connection is held
while the client reads)."""


def first_wrong_step(method: str, scp: Verdict | None, rollout: Verdict | None) -> int | None:
    """The first wrong step a wrong answer's labels rest on under the batch's scp_method."""
    if method == "consensus":
        if agreement(scp, rollout) != "agree":
            return None
        source = scp
    else:
        source = rollout if method == "rollouts" else scp
    if source is None or source.outcome != VerdictOutcome.PARSED:
        return None
    return source.wrong_step_number


def step_labels(text: str, correct: bool, first_wrong: int | None) -> tuple[list[str], list[bool]]:
    """The answer's steps (without their "Step N:" labels) and one label per step kept."""
    steps = [split_step_marker(step.text)[1].strip() for step in segment_steps(text)]
    if correct:
        return steps, [True] * len(steps)
    if first_wrong is None or not 1 <= first_wrong <= len(steps):
        return [], []
    return steps[:first_wrong], [True] * (first_wrong - 1) + [False]


def prm_rows(
    session_factory: sessionmaker[Session],
    *,
    batch_id: str | None = None,
    dataset_id: str | None = None,
) -> Iterator[dict[str, Any]]:
    """A batch's judged or reviewed answers, or those behind a dataset's pairs, as stepwise rows."""
    fap, scp, rollout = aliased(Verdict), aliased(Verdict), aliased(Verdict)
    newest = select(Review.after).where(Review.sample_id == Sample.id)
    if dataset_id is not None:  # frozen: the reviews stored before the dataset was made
        made = select(Dataset.created_at).where(Dataset.id == dataset_id).scalar_subquery()
        newest = newest.where(Review.created_at <= made)
    review = newest.order_by(Review.id.desc()).limit(1).lateral("review")
    query = (
        select(Sample, Prompt.question, Prompt.custom_id, fap.verdict, scp, rollout, Batch.judge)
        .add_columns(review.c.after)
        .join(Prompt, Prompt.id == Sample.prompt_id)
        .join(Batch, Batch.id == Sample.batch_id)
        .outerjoin(fap, and_(fap.sample_id == Sample.id, fap.kind == SignalKind.FAP))
        .outerjoin(scp, and_(scp.sample_id == Sample.id, scp.kind == SignalKind.SCP))
        .outerjoin(rollout, and_(rollout.sample_id == Sample.id, rollout.kind == ROLLOUT_VERDICT))
        .outerjoin(review, true())
        .where(
            or_(
                review.c.after.is_not(None),
                and_(fap.outcome == VerdictOutcome.PARSED, fap.verdict.in_(["correct", "wrong"])),
            )
        )
        .order_by(Sample.id)
        .limit(ROWS_PER_PAGE)
    )
    if batch_id is not None:
        query = query.where(Sample.batch_id == batch_id)
    if dataset_id is not None:
        in_dataset = (
            select(PreferencePair.id)
            .join(DatasetPair, DatasetPair.pair_id == PreferencePair.id)
            .where(
                DatasetPair.dataset_id == dataset_id,
                or_(
                    PreferencePair.chosen_sample_id == Sample.id,
                    PreferencePair.rejected_sample_id == Sample.id,
                ),
            )
            .exists()
        )
        query = query.where(in_dataset)
    after = 0
    while True:
        with session_factory() as session:
            page = session.execute(query.where(Sample.id > after)).all()
        if not page:
            return
        for sample, question, custom_id, verdict, scp_row, rollout_row, judge, reviewed in page:
            if reviewed is not None:
                correct = bool(reviewed["final_answer_correct"])
                wrong_at, source = reviewed["first_wrong_step"], "review"
            else:
                method = judge.get("scp_method", "judge")
                correct = verdict == "correct"
                wrong_at = None if correct else first_wrong_step(method, scp_row, rollout_row)
                source = "final_answer" if correct else method
            completions, labels = step_labels(sample.text, correct, wrong_at)
            if not completions:
                continue
            yield {
                "prompt": question,
                "completions": completions,
                "labels": labels,
                "sample_id": sample.id,
                "batch_id": sample.batch_id,
                "custom_id": custom_id,
                "label_source": source,
                "reviewed": reviewed is not None,
            }
        after = page[-1][0].id


def prm_jsonl(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """The rows as JSON Lines, a few hundred per network write."""
    buffer: list[str] = []
    for row in rows:
        buffer.append(json.dumps(row, ensure_ascii=False))
        if len(buffer) >= 256:
            yield ("\n".join(buffer) + "\n").encode()
            buffer.clear()
    if buffer:
        yield ("\n".join(buffer) + "\n").encode()
