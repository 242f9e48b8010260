"""The review queue: a batch's unreviewed answers, those the judge is least sure of first."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, aliased

from app.kernel.consensus import agreement
from app.kernel.models import Prompt, Review, Sample, Verdict
from app.kernel.models.statuses import ROLLOUT_VERDICT, SignalKind, VerdictOutcome
from app.kernel.verifiable import rule_verdict
from app.schemas.review import QueuedAnswer
from app.services.batches import get_batch
from app.services.samples import samples_out

REASONS = ("judge_unparseable", "failed_validation", "rollout_disagreement", "rule_disagreement")
"""Why an answer comes first, in the order the queue ranks them."""


@dataclass(frozen=True)
class Ranked:
    sample_id: int
    reasons: list[str]

    @property
    def key(self) -> tuple[int, int]:
        """Answers with a reason first (the first reason decides), then by id."""
        rank = min((REASONS.index(r) for r in self.reasons), default=len(REASONS))
        return rank, self.sample_id


def review_queue(
    session: Session, batch_id: str, *, project_id: str, limit: int, after: int | None
) -> tuple[list[QueuedAnswer], bool]:
    """One page of the queue; `after` is the last sample id of the previous page."""
    batch = get_batch(session, batch_id, project_id=project_id)
    by_rule = batch.options.judged_by_rule
    ranked = sorted(
        (rank_answer(row, by_rule=by_rule) for row in queue_rows(session, batch.id)),
        key=lambda item: item.key,
    )
    if after is not None:
        at = next((i for i, item in enumerate(ranked) if item.sample_id == after), None)
        ranked = ranked[at + 1 :] if at is not None else ranked
    page, has_more = ranked[:limit], len(ranked) > limit
    rows = session.execute(
        select(Sample, Prompt)
        .join(Prompt, Prompt.id == Sample.prompt_id)
        .where(Sample.id.in_([item.sample_id for item in page]))
    ).all()
    found = {sample.id: (sample, prompt) for sample, prompt in rows}
    ordered = [found[item.sample_id] for item in page]
    return [
        QueuedAnswer(id=item.sample_id, reasons=item.reasons, prompt_index=prompt.index, sample=out)
        for item, (_, prompt), out in zip(page, ordered, samples_out(session, ordered), strict=True)
    ], has_more


@dataclass  # not frozen: app.kernel.consensus.StepLabel's attributes are plain ones
class StepView:
    """What the queue reads of a first-error verdict (the judge's or the rollouts')."""

    outcome: str
    wrong_step_number: int | None
    wrong_step: str | None


@dataclass(frozen=True)
class QueueRow:
    """An unreviewed answer as the queue ranks it: only the columns it needs."""

    sample_id: int
    text: str
    reference_answer: str | None
    fap_outcome: str
    fap_verdict: str | None
    scp: StepView | None
    rollout: StepView | None


def queue_rows(session: Session, batch_id: str) -> list[QueueRow]:
    """Every judged, unreviewed answer of the batch with its reference and verdicts."""
    fap, scp, rollout = aliased(Verdict), aliased(Verdict), aliased(Verdict)
    reviewed = select(Review.sample_id).where(Review.batch_id == batch_id)
    rows = session.execute(
        select(
            Sample.id,
            Sample.text,
            Prompt.reference_answer,
            fap.outcome,
            fap.verdict,
            scp.outcome,
            scp.wrong_step_number,
            scp.wrong_step,
            rollout.outcome,
            rollout.wrong_step_number,
            rollout.wrong_step,
        )
        .join(Prompt, Prompt.id == Sample.prompt_id)
        .join(fap, and_(fap.sample_id == Sample.id, fap.kind == SignalKind.FAP))
        .outerjoin(scp, and_(scp.sample_id == Sample.id, scp.kind == SignalKind.SCP))
        .outerjoin(rollout, and_(rollout.sample_id == Sample.id, rollout.kind == ROLLOUT_VERDICT))
        .where(
            Sample.batch_id == batch_id,
            Sample.id.not_in(reviewed),
            fap.outcome != VerdictOutcome.TRUNCATED,
        )
    )
    return [
        QueueRow(
            sample_id=row[0],
            text=row[1],
            reference_answer=row[2],
            fap_outcome=row[3],
            fap_verdict=row[4],
            scp=None if row[5] is None else StepView(row[5], row[6], row[7]),
            rollout=None if row[8] is None else StepView(row[8], row[9], row[10]),
        )
        for row in rows
    ]


def rank_answer(row: QueueRow, *, by_rule: bool) -> Ranked:
    """Why this answer should be looked at first (nothing: it waits its turn)."""
    reasons = []
    if row.fap_outcome == VerdictOutcome.UNPARSEABLE or (
        row.scp is not None and row.scp.outcome == VerdictOutcome.UNPARSEABLE
    ):
        reasons.append("judge_unparseable")
    if row.scp is not None and row.scp.outcome == VerdictOutcome.FAILED_VALIDATION:
        reasons.append("failed_validation")
    if agreement(row.scp, row.rollout) == "disagree":
        reasons.append("rollout_disagreement")
    if not by_rule and row.fap_verdict is not None and row.reference_answer:
        by_rule_verdict = rule_verdict(row.text, row.reference_answer)
        if by_rule_verdict is not None and by_rule_verdict != row.fap_verdict:
            reasons.append("rule_disagreement")
    return Ranked(row.sample_id, reasons)
