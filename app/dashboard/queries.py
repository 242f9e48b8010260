"""What the dashboard pages read that the API has no call for: prompts with their verdict
counts, one prompt's answers, a filtered page of pairs, a job's metric events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from app.kernel.errors import NotFoundError
from app.kernel.models import PreferencePair, Prompt, Review, Sample, TrainingEvent, Verdict
from app.kernel.models.statuses import SignalKind
from app.schemas.sample import SampleOut
from app.services.calibration import review_gold
from app.services.samples import samples_out
from app.services.training_jobs import get_training_job


@dataclass(frozen=True)
class PromptRow:
    """One question of a batch with how its answers were judged."""

    index: int
    custom_id: str | None
    question: str
    samples: int
    correct: int
    wrong: int
    unparseable: int


def prompt_rows(session: Session, batch_id: str, *, start: int, limit: int) -> list[PromptRow]:
    """Prompts from index `start` on, each with its answer and final-verdict counts."""
    fap = and_(Verdict.sample_id == Sample.id, Verdict.kind == SignalKind.FAP)

    def verdicts(condition: Any) -> Any:
        return func.count(case((condition, 1)))

    query = (
        select(
            Prompt.index,
            Prompt.custom_id,
            Prompt.question,
            func.count(Sample.id),
            verdicts(Verdict.verdict == "correct"),
            verdicts((Verdict.outcome == "parsed") & (Verdict.verdict == "wrong")),
            verdicts(Verdict.outcome == "unparseable"),
        )
        .select_from(Prompt)
        .outerjoin(Sample, Sample.prompt_id == Prompt.id)
        .outerjoin(Verdict, fap)
        .where(Prompt.batch_id == batch_id, Prompt.index >= start)
        .group_by(Prompt.id)
        .order_by(Prompt.index)
        .limit(limit)
    )
    return [PromptRow(*row) for row in session.execute(query)]


def prompt_at(session: Session, batch_id: str, index: int) -> Prompt:
    prompt = session.scalars(
        select(Prompt).where(Prompt.batch_id == batch_id, Prompt.index == index)
    ).first()
    if prompt is None:
        raise NotFoundError(f"prompt {index} of batch {batch_id!r} not found")
    return prompt


def answers_of(session: Session, prompt: Prompt) -> list[SampleOut]:
    """The prompt's answers in sample order, each with its FAP and SCP verdicts."""
    samples = list(
        session.scalars(
            select(Sample).where(Sample.prompt_id == prompt.id).order_by(Sample.sample_index)
        )
    )
    return samples_out(session, [(sample, prompt) for sample in samples])


@dataclass(frozen=True)
class PairRow:
    """A stored pair as the browser shows it."""

    id: int
    kind: str
    prompt_index: int
    custom_id: str | None
    prompt: str
    chosen: str
    rejected: str
    token_count: int | None
    reviewed: bool = False
    """Built from a person's review (provenance reviewed: true)."""


def last_content(messages: list[dict[str, Any]]) -> str:
    return str(messages[-1]["content"]) if messages else ""


def pair_rows(
    session: Session,
    batch_id: str,
    *,
    kind: str | None,
    prompt: str | None,
    after: int | None,
    limit: int,
) -> tuple[list[PairRow], bool]:
    """Pairs by id; `prompt` matches a prompt's own id, or its index when it is a number."""
    query = (
        select(PreferencePair, Prompt.index, Prompt.custom_id)
        .join(Prompt, Prompt.id == PreferencePair.prompt_id)
        .where(PreferencePair.batch_id == batch_id, PreferencePair.withdrawn_at.is_(None))
        .order_by(PreferencePair.id)
        .limit(limit + 1)
    )
    if kind:
        query = query.where(PreferencePair.kind == kind)
    if prompt:
        matches = Prompt.custom_id == prompt
        if prompt.isdigit() and len(prompt) < 10:
            matches = or_(matches, Prompt.index == int(prompt))
        query = query.where(matches)
    if after is not None:
        query = query.where(PreferencePair.id > after)
    rows = session.execute(query).all()
    return [
        PairRow(
            id=pair.id,
            kind=pair.kind,
            prompt_index=index,
            custom_id=custom_id,
            prompt=last_content(pair.prompt),
            chosen=last_content(pair.chosen),
            rejected=last_content(pair.rejected),
            token_count=pair.token_count,
            reviewed=bool(pair.provenance.get("reviewed")),
        )
        for pair, index, custom_id in rows[:limit]
    ], len(rows) > limit


def job_events(
    session: Session, job_id: str, *, project_id: str, kinds: tuple[str, ...]
) -> list[TrainingEvent]:
    """Every event of these kinds, oldest first (the charts need them all)."""
    get_training_job(session, job_id, project_id=project_id)
    return list(
        session.scalars(
            select(TrainingEvent)
            .where(TrainingEvent.job_id == job_id, TrainingEvent.kind.in_(kinds))
            .order_by(TrainingEvent.id)
        )
    )


@dataclass(frozen=True)
class Disagreement:
    """A gold-labelled answer the judge decided otherwise, and where its prompt is."""

    prompt_index: int
    sample: SampleOut

    @property
    def gold(self) -> dict[str, Any]:
        """The label the judge is measured against: the newest review's, else the given one."""
        review = self.sample.review
        if review is None:
            return self.sample.gold or {}
        return review_gold(review.model_dump())


def disagreements(
    session: Session, batch_id: str, *, limit: int
) -> tuple[list[Disagreement], bool]:
    """The batch's gold answers (the first `limit`) where the judge disagrees with the label,
    and whether there were more gold answers than that."""
    rows = session.execute(
        select(Sample, Prompt)
        .join(Prompt, Prompt.id == Sample.prompt_id)
        .where(
            Sample.batch_id == batch_id,
            or_(
                Sample.gold.is_not(None),
                Sample.id.in_(select(Review.sample_id).where(Review.batch_id == batch_id)),
            ),
        )
        .order_by(Prompt.index, Sample.sample_index)
        .limit(limit + 1)
    ).all()
    capped = len(rows) > limit
    rows = rows[:limit]
    found = [
        Disagreement(prompt.index, sample)
        for (_, prompt), sample in zip(rows, samples_out(session, rows), strict=True)
        if sample.agrees is not None and not (sample.agrees.fap and sample.agrees.scp is not False)
    ]
    return found, capped
