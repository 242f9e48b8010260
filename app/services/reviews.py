"""A person's review of an answer: checked, stored beside the judge's verdict (never over it),
and turned into pairs: the answer's old pairs are withdrawn, new ones built from the review."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.orm import Session

from app.kernel.answers import Step, segment_steps, split_step_marker
from app.kernel.batch_options import BatchSettings
from app.kernel.db.base import utcnow
from app.kernel.errors import InvalidInputError, NotFoundError
from app.kernel.models import Batch, PreferencePair, Prompt, Review, Sample, Verdict
from app.kernel.models.statuses import ROLLOUT_VERDICT, SampleSource, SignalKind, VerdictOutcome
from app.kernel.pairing import (
    JudgedSample,
    PairCandidate,
    StepCorrection,
    build_fap_pairs,
    build_scp_pairs,
    drop_equal_and_duplicates,
    model_provenance,
    pair_columns,
)
from app.kernel.steps import max_correction_chars
from app.schemas.review import RebuiltPairs, ReviewCreate, ReviewOut, ReviewResult
from app.services.batches import get_batch

REVIEW_FIELDS = ("final_answer_correct", "first_wrong_step", "correction")


def review_answer(
    session: Session,
    batch_id: str,
    sample_id: int,
    request: ReviewCreate,
    *,
    project_id: str,
    reviewer: str,
) -> ReviewResult:
    """Store the review of one answer and rebuild its pairs from it (the caller commits)."""
    batch = get_batch(session, batch_id, project_id=project_id)
    # Locked: the worker pairing this chunk waits for the review, or the review for it.
    sample = session.scalars(
        select(Sample).where(Sample.id == sample_id, Sample.batch_id == batch.id).with_for_update()
    ).first()
    if sample is None:
        raise NotFoundError(f"sample {sample_id} not found in batch {batch_id!r}")
    steps = segment_steps(sample.text)
    after = checked_review(request, steps)
    review = Review(
        batch_id=batch.id,
        sample_id=sample.id,
        project_id=project_id,
        reviewer=reviewer,
        before=current_label(session, sample, steps),
        after=after,
    )
    session.add(review)
    session.flush()
    pairs = rebuild_pairs(session, batch, sample, review, steps)
    return ReviewResult(review=review_out(review), pairs=pairs)


def checked_review(request: ReviewCreate, steps: list[Step]) -> dict[str, Any]:
    """The review as stored, or InvalidInputError naming the field that does not fit the answer."""
    number = request.first_wrong_step
    if number is None:
        if request.correction is not None:
            raise InvalidInputError(
                "correction: only a wrong step has a correction; first_wrong_step is null"
            )
        return {
            "final_answer_correct": request.final_answer_correct,
            **dict.fromkeys(REVIEW_FIELDS[1:]),
        }
    if request.final_answer_correct:
        raise InvalidInputError(
            "first_wrong_step: an answer whose final answer is correct has no wrong step; send null"
        )
    if not steps:
        raise InvalidInputError("first_wrong_step: the answer has no reasoning steps; send null")
    if not 1 <= number <= len(steps):
        raise InvalidInputError(
            f"first_wrong_step: must be one of the answer's steps 1..{len(steps)}, got {number}"
        )
    if request.correction is None:
        raise InvalidInputError("correction: required when first_wrong_step names a step")
    correction = request.correction.strip()
    wrong = steps[number - 1].text
    if not correction:
        raise InvalidInputError("correction: must not be empty")
    if comparable(correction) == comparable(wrong):
        raise InvalidInputError(f"correction: the same as step {number}; write the corrected step")
    if len(correction) > max_correction_chars(wrong):
        raise InvalidInputError(
            f"correction: {len(correction)} characters, more than one step's worth "
            f"(at most {max_correction_chars(wrong)} for step {number})"
        )
    return {
        "final_answer_correct": False,
        "first_wrong_step": number,
        "correction": correction,
    }


def comparable(step: str) -> str:
    """A step without its label, whitespace collapsed and case folded."""
    return " ".join(split_step_marker(step.strip())[1].split()).casefold()


def current_label(session: Session, sample: Sample, steps: list[Step]) -> dict[str, Any]:
    """What counts for the answer now: its newest review, else the judge's verdicts."""
    newest = newest_reviews(session, [sample.id]).get(sample.id)
    if newest is not None:
        return {"source": "review", "review_id": newest.id, **newest.after}
    verdicts = {
        row.kind: row
        for row in session.scalars(select(Verdict).where(Verdict.sample_id == sample.id))
    }
    return judge_label(verdicts, sample.text, steps)


def judge_label(verdicts: dict[str, Verdict], text: str, steps: list[Step]) -> dict[str, Any]:
    """The judge's reading of an answer in a review's terms (None where it gave none)."""
    fap = verdicts.get(SignalKind.FAP)
    scp = verdicts.get(SignalKind.SCP) or verdicts.get(ROLLOUT_VERDICT)
    correct = None if fap is None or fap.verdict is None else fap.verdict == "correct"
    label: dict[str, Any] = {"source": "judge", "final_answer_correct": correct}
    if scp is not None and scp.outcome == VerdictOutcome.PARSED:
        label["first_wrong_step"] = scp.wrong_step_number or step_of_quote(
            text, scp.wrong_step, steps
        )
        label["correction"] = scp.correction
    else:
        label |= {"first_wrong_step": None, "correction": None}
    return label


def step_of_quote(text: str, quote: str | None, steps: list[Step]) -> int | None:
    """The number of the step a quoted wrong step starts in (scp-v1 quotes, it does not number)."""
    if not quote:
        return None
    where = text.find(quote.strip())
    return next((s.number for s in steps if s.start <= where < s.end), None)


def newest_reviews(session: Session, sample_ids: list[int]) -> dict[int, Review]:
    """Each answer's newest review (the one that counts), by sample id."""
    if not sample_ids:
        return {}
    rows = session.scalars(
        select(Review)
        .where(Review.sample_id.in_(sample_ids))
        .ext(distinct_on(Review.sample_id))
        .order_by(Review.sample_id, Review.id.desc())
    )
    return {row.sample_id: row for row in rows}


def rebuild_pairs(
    session: Session, batch: Batch, sample: Sample, review: Review, steps: list[Step]
) -> RebuiltPairs:
    """Withdraw the answer's live pairs and store those built from the review, with the same
    pairing code and options as the worker's (datasets frozen earlier keep the old ones)."""
    old = list(
        session.scalars(
            select(PreferencePair)
            .where(
                PreferencePair.batch_id == batch.id,
                PreferencePair.withdrawn_at.is_(None),
                or_(
                    PreferencePair.chosen_sample_id == sample.id,
                    PreferencePair.rejected_sample_id == sample.id,
                ),
            )
            .order_by(PreferencePair.id)
            .with_for_update()
        )
    )
    if old:
        session.execute(
            update(PreferencePair)
            .where(PreferencePair.id.in_([pair.id for pair in old]))
            .values(withdrawn_at=utcnow())
        )
    prompt = session.get_one(Prompt, sample.prompt_id)
    given = prompt.answers is not None
    context = [] if given else pair_context(session, batch, old)
    candidates = review_pairs(session, batch.options, prompt, sample, review, steps, context)
    kept, _ = drop_equal_and_duplicates(candidates)
    rows = [review_pair_row(batch, prompt.id, pair, review, given=given) for pair in kept]
    created: list[int] = []
    if rows:
        created = list(
            session.scalars(
                insert(PreferencePair).on_conflict_do_nothing().returning(PreferencePair.id),
                rows,
            )
        )
    return RebuiltPairs(withdrawn=[pair.id for pair in old], created=sorted(created))


def review_pairs(
    session: Session,
    options: BatchSettings,
    prompt: Prompt,
    sample: Sample,
    review: Review,
    steps: list[Step],
    context: list[dict[str, str]],
) -> list[PairCandidate]:
    """The answer's pairs under the review: FAP pairs of its question paired with every answer's
    verdict as it counts now (a review's over the judge's), and the review's SCP pair."""
    pairs: list[PairCandidate] = []
    if options.pairing.fap:
        answers = list(
            session.scalars(
                select(Sample).where(Sample.prompt_id == prompt.id).order_by(Sample.sample_index)
            )
        )
        reviews = newest_reviews(session, [answer.id for answer in answers])
        judged = judge_verdicts(session, [answer.id for answer in answers])
        verdicts = [
            JudgedSample(
                answer.id,
                answer.text,
                counted_verdict(reviews.get(answer.id), judged.get(answer.id)),
            )
            for answer in answers
        ]
        pairs += [
            pair
            for pair in build_fap_pairs(
                prompt.question,
                verdicts,
                strategy=options.pairing.strategy,
                max_pairs_per_prompt=options.pairing.max_pairs_per_prompt,
                context=context,
            )
            if sample.id in (pair.chosen_sample_id, pair.rejected_sample_id)
        ]
    number = review.after["first_wrong_step"]
    if options.pairing.scp and number is not None:
        step = steps[number - 1]
        label = split_step_marker(step.text)[0]
        correction = review.after["correction"]
        if not split_step_marker(correction)[0]:  # keep the step's label, as the judge's do
            correction = label + correction
        fix = StepCorrection(sample.id, sample.text[: step.start], step.text, correction)
        pairs += build_scp_pairs(prompt.question, [fix], context=context)
    return pairs


def judge_verdicts(session: Session, sample_ids: list[int]) -> dict[int, str | None]:
    """The judge's final-answer verdict of each answer (None: unparseable or truncated)."""
    rows = session.execute(
        select(Verdict.sample_id, Verdict.verdict).where(
            Verdict.sample_id.in_(sample_ids), Verdict.kind == SignalKind.FAP
        )
    )
    return {sample_id: verdict for sample_id, verdict in rows}


def counted_verdict(review: Review | None, judged: str | None) -> str | None:
    """The verdict that counts for pairing: the newest review's, else the judge's."""
    if review is None:
        return judged
    return "correct" if review.after["final_answer_correct"] else "wrong"


def pair_context(session: Session, batch: Batch, old: list[PreferencePair]) -> list[dict[str, str]]:
    """What precedes the question in the batch's pair prompts: nothing (pairing.prompt
    "question"), or, for "as_sampled", what the worker put there: the same system prompt and
    examples for every question, read from one of the batch's pairs."""
    if batch.options.pairing.prompt != "as_sampled":
        return []
    if old:
        return list(old[0].prompt[:-1])
    found = session.scalar(
        select(PreferencePair.prompt)
        .where(
            PreferencePair.batch_id == batch.id,
            PreferencePair.provenance["source"].astext == SampleSource.POLICY.value,
        )
        .limit(1)
    )
    return list(found[:-1]) if found else []


def review_pair_row(
    batch: Batch, prompt_id: int, pair: PairCandidate, review: Review, *, given: bool
) -> dict[str, Any]:
    """A reviewed pair's row: the batch's provenance, marked reviewed, naming the review. (The
    API loads no tokenizer: a reviewed pair has no token count, see docs/method.md.)"""
    provenance = {
        **model_provenance(batch.options, given=given),
        "reviewed": True,
        "review_id": review.id,
        "reviewer": review.reviewer,
    }
    return pair_columns(batch.id, prompt_id, replace(pair, token_count=None), provenance)


def list_reviews(
    session: Session,
    batch_id: str,
    sample_id: int,
    *,
    project_id: str,
    limit: int,
    after: int | None,
) -> tuple[list[ReviewOut], bool]:
    """An answer's reviews, oldest first (the last one counts)."""
    batch = get_batch(session, batch_id, project_id=project_id)
    exists = session.scalar(
        select(Sample.id).where(and_(Sample.id == sample_id, Sample.batch_id == batch.id))
    )
    if exists is None:
        raise NotFoundError(f"sample {sample_id} not found in batch {batch_id!r}")
    query = select(Review).where(Review.sample_id == sample_id).order_by(Review.id).limit(limit + 1)
    if after is not None:
        query = query.where(Review.id > after)
    rows = list(session.scalars(query))
    return [review_out(row) for row in rows[:limit]], len(rows) > limit


def review_out(review: Review) -> ReviewOut:
    return ReviewOut.model_validate(review, from_attributes=True)
