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


def queue_rows(
    session: Session, batch_id: str
) -> list[tuple[Sample, Prompt, Verdict, Verdict | None, Verdict | None]]:
    """Every judged, unreviewed answer of the batch with its reference and verdicts."""
    fap, scp, rollout = aliased(Verdict), aliased(Verdict), aliased(Verdict)
    reviewed = select(Review.sample_id).where(Review.batch_id == batch_id)
    return [
        tuple(row)  # type: ignore[misc]
        for row in session.execute(
            select(Sample, Prompt, fap, scp, rollout)
            .join(Prompt, Prompt.id == Sample.prompt_id)
            .join(fap, and_(fap.sample_id == Sample.id, fap.kind == SignalKind.FAP))
            .outerjoin(scp, and_(scp.sample_id == Sample.id, scp.kind == SignalKind.SCP))
            .outerjoin(
                rollout, and_(rollout.sample_id == Sample.id, rollout.kind == ROLLOUT_VERDICT)
            )
            .where(
                Sample.batch_id == batch_id,
                Sample.id.not_in(reviewed),
                fap.outcome != VerdictOutcome.TRUNCATED,
            )
        )
    ]


def rank_answer(
    row: tuple[Sample, Prompt, Verdict, Verdict | None, Verdict | None], *, by_rule: bool
) -> Ranked:
    """Why this answer should be looked at first (nothing: it waits its turn)."""
    sample, prompt, fap, scp, rollout = row
    reasons = []
    if fap.outcome == VerdictOutcome.UNPARSEABLE or (
        scp is not None and scp.outcome == VerdictOutcome.UNPARSEABLE
    ):
        reasons.append("judge_unparseable")
    if scp is not None and scp.outcome == VerdictOutcome.FAILED_VALIDATION:
        reasons.append("failed_validation")
    if agreement(scp, rollout) == "disagree":
        reasons.append("rollout_disagreement")
    if not by_rule and fap.verdict is not None and prompt.reference_answer:
        by_rule_verdict = rule_verdict(sample.text, prompt.reference_answer)
        if by_rule_verdict is not None and by_rule_verdict != fap.verdict:
            reasons.append("rule_disagreement")
    return Ranked(sample.id, reasons)
