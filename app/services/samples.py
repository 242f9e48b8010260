"""Reading samples back with their verdicts, a page at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session, aliased

from app.kernel.consensus import DECIDED
from app.kernel.consensus import agreement as step_agreement
from app.kernel.models import PrefixRollout, Prompt, Review, Sample, Verdict
from app.kernel.models.statuses import ROLLOUT_VERDICT, SignalKind, VerdictOutcome
from app.schemas.calibration import Agreement
from app.schemas.sample import PrefixEstimateOut, ReviewSummary, SampleOut, VerdictOut
from app.services.calibration import RULE_VERSION, JudgedGold, agreement, review_gold


def list_samples(
    session: Session,
    batch_id: str,
    *,
    limit: int,
    after: int | None,
    verdict: str | None,
    agreement: str | None = None,
) -> tuple[list[SampleOut], bool]:
    """Samples by id; `verdict` keeps only correct, wrong, unparseable or truncated answers,
    `agreement` only those where judge and rollouts agree (or disagree) on the first wrong step."""
    fap = aliased(Verdict)
    query = (
        select(Sample, Prompt)
        .join(Prompt, Prompt.id == Sample.prompt_id)
        .where(Sample.batch_id == batch_id)
        .order_by(Sample.id)
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(Sample.id > after)
    if verdict is not None:
        query = query.join(fap, and_(fap.sample_id == Sample.id, fap.kind == SignalKind.FAP))
        if verdict in (VerdictOutcome.UNPARSEABLE, VerdictOutcome.TRUNCATED):
            query = query.where(fap.outcome == verdict)
        else:
            query = query.where(fap.verdict == verdict)
    if agreement is not None:
        query = with_agreement(query, agreement)
    rows = session.execute(query).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    return samples_out(session, rows), has_more


def with_agreement(query: Any, wanted: str) -> Any:
    """Keep the samples whose judge and rollout verdicts both decided and agree (or not)."""
    scp, rollout = aliased(Verdict), aliased(Verdict)
    query = query.join(scp, and_(scp.sample_id == Sample.id, scp.kind == SignalKind.SCP)).join(
        rollout, and_(rollout.sample_id == Sample.id, rollout.kind == ROLLOUT_VERDICT)
    )
    decided = list(DECIDED)
    query = query.where(scp.outcome.in_(decided), rollout.outcome.in_(decided))
    differ = or_(
        scp.outcome != rollout.outcome,
        scp.wrong_step_number.is_distinct_from(rollout.wrong_step_number),
    )
    return query.where(differ if wanted == "disagree" else ~differ)


def samples_out(session: Session, rows: Sequence[tuple[Sample, Prompt]]) -> list[SampleOut]:
    """Each sample with its prompt and its FAP and SCP verdicts (one query for the verdicts)."""
    verdicts: dict[tuple[int, str], Verdict] = {
        (row.sample_id, row.kind): row
        for row in session.scalars(
            select(Verdict).where(Verdict.sample_id.in_([sample.id for sample, _ in rows]))
        )
    }
    sample_ids = [sample.id for sample, _ in rows]
    reviews = {
        row.sample_id: row
        for row in session.scalars(
            select(Review)
            .where(Review.sample_id.in_(sample_ids))
            .ext(distinct_on(Review.sample_id))
            .order_by(Review.sample_id, Review.id.desc())
        )
    }
    estimates: dict[int, list[PrefixEstimateOut]] = {}
    for row in session.scalars(
        select(PrefixRollout)
        .where(PrefixRollout.sample_id.in_([sample.id for sample, _ in rows]))
        .order_by(PrefixRollout.sample_id, PrefixRollout.prefix_steps)
    ):
        estimates.setdefault(row.sample_id, []).append(
            PrefixEstimateOut(
                prefix_steps=row.prefix_steps,
                rollouts=row.rollouts,
                successes=row.successes,
                unknown=row.unknown,
                success_rate=round(row.successes / row.rollouts, 4) if row.rollouts else 0.0,
            )
        )
    return [
        SampleOut(
            id=sample.id,
            prompt_id=sample.prompt_id,
            custom_id=prompt.custom_id,
            question=prompt.question,
            reference_answer=prompt.reference_answer,
            sample_index=sample.sample_index,
            text=sample.text,
            completion_tokens=sample.completion_tokens,
            policy_model=sample.policy_model,
            policy_prompt_version=sample.policy_prompt_version,
            source=sample.source,
            finish_reason=sample.finish_reason,
            fap=verdict_out(verdicts.get((sample.id, SignalKind.FAP))),
            scp=verdict_out(verdicts.get((sample.id, SignalKind.SCP))),
            gold=sample.gold,
            review=review_summary(reviews.get(sample.id)),
            agrees=gold_agreement(
                sample,
                reviews.get(sample.id),
                verdicts.get((sample.id, SignalKind.FAP)),
                verdicts.get((sample.id, SignalKind.SCP)),
            ),
            rollout=verdict_out(verdicts.get((sample.id, ROLLOUT_VERDICT))),
            prefix_estimates=estimates.get(sample.id),
            judge_rollout_agreement=step_agreement(
                verdicts.get((sample.id, SignalKind.SCP)),
                verdicts.get((sample.id, ROLLOUT_VERDICT)),
            ),
        )
        for sample, prompt in rows
    ]


def review_summary(review: Review | None) -> ReviewSummary | None:
    """The answer's newest review: what counts, who, when."""
    if review is None:
        return None
    return ReviewSummary(
        id=review.id, reviewer=review.reviewer, created_at=review.created_at, **review.after
    )


def gold_agreement(
    sample: Sample, review: Review | None, fap: Verdict | None, scp: Verdict | None
) -> Agreement | None:
    """The judge against an answer's gold label (its newest review, else the label it was given
    with), once it has a final-answer verdict row."""
    gold = sample.gold if review is None else review_gold(review.after)
    if gold is None or fap is None:
        return None
    return agreement(
        JudgedGold(
            gold=gold,
            fap_verdict=fap.verdict,
            by_rule=fap.prompt_version == RULE_VERSION,
            scp_outcome=None if scp is None else scp.outcome,
            scp_step=None if scp is None else scp.wrong_step_number,
        )
    )


def verdict_out(row: Verdict | None) -> VerdictOut | None:
    if row is None:
        return None
    return VerdictOut.model_validate(row, from_attributes=True)
