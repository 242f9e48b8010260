"""The review queue: a batch's unreviewed answers, those the judge is least sure of first.

Ranked in Postgres: the first three reasons are SQL expressions over the answer's verdicts and
a page is read by keyset on (rank, id). The fourth, the rule verifier's disagreement, parses the
answer's text (app.kernel.verifiable), which SQL cannot: it is checked here, only for answers no
other reason ranks, read in id order a slice at a time until the page is full.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.orm import QueryableAttribute, Session, aliased

from app.kernel.consensus import DECIDED
from app.kernel.models import Prompt, Review, Sample, Verdict
from app.kernel.models.statuses import ROLLOUT_VERDICT, SignalKind, VerdictOutcome
from app.kernel.verifiable import rule_verdict
from app.schemas.review import QueuedAnswer
from app.services.batches import get_batch
from app.services.samples import samples_out

REASONS = ("judge_unparseable", "failed_validation", "rollout_disagreement", "rule_disagreement")
"""Why an answer comes first, in the order the queue ranks them."""
RULE_RANK, PLAIN_RANK = 3, 4
"""The ranks of answers only the rule verifier doubts, and of those nothing doubts."""
FIRST_WINDOW, LAST_WINDOW = 250, 8000
"""Answers read at a time where the rule check decides the rank: a few for the next page, twice
as many each time the page is not full yet (up to LAST_WINDOW)."""


@dataclass(frozen=True)
class Ranked:
    sample_id: int
    reasons: list[str]


@dataclass(frozen=True)
class Candidate:
    """An unreviewed answer as the queue reads it: its SQL reasons and what the rule checks."""

    sample_id: int
    rank: int
    """The first SQL reason's index; RULE_RANK when none applies."""
    flags: tuple[bool, bool, bool]
    text: str
    reference_answer: str | None
    fap_verdict: str | None


def review_queue(
    session: Session, batch_id: str, *, project_id: str, limit: int, after: int | None
) -> tuple[list[QueuedAnswer], bool]:
    """One page of the queue; `after` is the last sample id of the previous page (an id no
    longer in the queue starts it again from the top)."""
    batch = get_batch(session, batch_id, project_id=project_id)
    queue = QueueQuery(batch.id, by_rule=batch.options.judged_by_rule)
    start = queue.position(session, after) if after is not None else None
    ranked = list(islice(queue.ranked(session, start, limit + 1), limit + 1))
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


def squashed(text: QueryableAttribute[str | None]) -> ColumnElement[str]:
    """A quoted step with its whitespace collapsed (app.kernel.consensus._squash, in SQL)."""
    return func.btrim(func.regexp_replace(func.coalesce(text, ""), r"\s+", " ", "g"))


class QueueQuery:
    """The queue of one batch as SQL: the unreviewed, judged answers and their reasons."""

    def __init__(self, batch_id: str, *, by_rule: bool) -> None:
        self.by_rule = by_rule
        fap, scp, rollout = aliased(Verdict), aliased(Verdict), aliased(Verdict)
        self.fap_verdict = fap.verdict
        unparseable = or_(
            fap.outcome == VerdictOutcome.UNPARSEABLE,
            func.coalesce(scp.outcome == VerdictOutcome.UNPARSEABLE, false()),
        )
        failed = func.coalesce(scp.outcome == VerdictOutcome.FAILED_VALIDATION, false())
        # app.kernel.consensus.agreement(scp, rollout) == "disagree": both decided, and a
        # different outcome, or both name a step and not the same (by number, else by quote).
        same_step = case(
            (
                and_(scp.wrong_step_number.is_not(None), rollout.wrong_step_number.is_not(None)),
                scp.wrong_step_number == rollout.wrong_step_number,
            ),
            else_=squashed(scp.wrong_step) == squashed(rollout.wrong_step),
        )
        decided = [str(outcome) for outcome in DECIDED]
        disagree = func.coalesce(
            and_(
                scp.outcome.in_(decided),
                rollout.outcome.in_(decided),
                or_(
                    scp.outcome != rollout.outcome,
                    and_(scp.outcome != VerdictOutcome.NO_STEP_ERROR, ~same_step),
                ),
            ),
            false(),
        )
        self.flags = (unparseable, failed, disagree)
        self.rank = case(
            (unparseable, literal(0)), (failed, literal(1)), (disagree, literal(2)), else_=RULE_RANK
        )
        self.batch_id = batch_id
        # Every answer a SQL reason can rank has one of these verdicts (few, and indexed).
        self.doubtful = select(Verdict.sample_id).where(
            Verdict.batch_id == batch_id,
            or_(
                Verdict.outcome.in_([VerdictOutcome.UNPARSEABLE, VerdictOutcome.FAILED_VALIDATION]),
                Verdict.kind == ROLLOUT_VERDICT,
            ),
        )
        reviewed = exists().where(Review.sample_id == Sample.id)
        self.base = (
            select(
                Sample.id,
                self.rank,
                *self.flags,
                Sample.text,
                Prompt.reference_answer,
                fap.verdict,
            )
            .join(Prompt, Prompt.id == Sample.prompt_id)
            .join(fap, and_(fap.sample_id == Sample.id, fap.kind == SignalKind.FAP))
            .outerjoin(scp, and_(scp.sample_id == Sample.id, scp.kind == SignalKind.SCP))
            .outerjoin(
                rollout, and_(rollout.sample_id == Sample.id, rollout.kind == ROLLOUT_VERDICT)
            )
            .where(Sample.batch_id == batch_id, ~reviewed, fap.outcome != VerdictOutcome.TRUNCATED)
        )

    def rule_checked(self) -> ColumnElement[bool]:
        """Answers the rule check applies to (it may still find nothing to check)."""
        if self.by_rule:
            return false()
        return and_(
            self.fap_verdict.is_not(None),
            Prompt.reference_answer.is_not(None),
            Prompt.reference_answer != "",
        )

    def read(self, session: Session, query: Select[Any]) -> list[Candidate]:
        return [
            Candidate(row[0], row[1], (row[2], row[3], row[4]), row[5], row[6], row[7])
            for row in session.execute(query)
        ]

    def disagrees_with_rule(self, row: Candidate) -> bool:
        if self.by_rule or row.fap_verdict is None or not row.reference_answer:
            return False
        by_rule = rule_verdict(row.text, row.reference_answer)
        return by_rule is not None and by_rule != row.fap_verdict

    def position(self, session: Session, sample_id: int) -> tuple[int, int] | None:
        """Where an answer stands in the queue, (rank, id); None when it is not in it."""
        rows = self.read(session, self.base.where(Sample.id == sample_id))
        if not rows:
            return None
        row = rows[0]
        if row.rank < RULE_RANK:
            return row.rank, row.sample_id
        return (RULE_RANK if self.disagrees_with_rule(row) else PLAIN_RANK), row.sample_id

    def ranked(
        self, session: Session, start: tuple[int, int] | None, need: int
    ) -> Iterator[Ranked]:
        """The queue in (rank, id) order after `start`; read lazily, `need` rows a time at
        most where SQL ranks and a window of ids where the rule check does."""
        rank, last = start or (-1, 0)
        if rank < RULE_RANK:
            yield from self.sql_ranked(session, (rank, last), need)
        if rank <= RULE_RANK and not self.by_rule:
            after = last if rank == RULE_RANK else 0
            yield from self.unranked(session, after, self.rule_checked(), keep=True)
        after = last if rank == PLAIN_RANK else 0
        yield from self.unranked(session, after, true(), keep=False)

    def sql_ranked(self, session: Session, start: tuple[int, int], need: int) -> Iterator[Ranked]:
        """Answers with a reason SQL sees, by (rank, id), with every reason they have."""
        while True:
            rows = self.read(
                session,
                self.base.where(
                    Sample.id.in_(self.doubtful),
                    self.rank < RULE_RANK,
                    tuple_(self.rank, Sample.id) > start,
                )
                .order_by(self.rank, Sample.id)
                .limit(need),
            )
            for row in rows:
                reasons = [reason for reason, on in zip(REASONS, row.flags, strict=False) if on]
                if self.disagrees_with_rule(row):
                    reasons.append(REASONS[RULE_RANK])
                yield Ranked(row.sample_id, reasons)
            if len(rows) < need:
                return
            start = (rows[-1].rank, rows[-1].sample_id)

    def unranked(
        self, session: Session, after: int, where: ColumnElement[bool], *, keep: bool
    ) -> Iterator[Ranked]:
        """Answers no SQL reason ranks, by id: those the rule verifier doubts (keep=True) or
        the others (keep=False); the batch's answers read a window of ids at a time."""
        size = FIRST_WINDOW
        while True:
            # The window: the batch's next `size` answers by id, read as an id range.
            end = session.scalar(
                select(Sample.id)
                .where(Sample.batch_id == self.batch_id, Sample.id > after)
                .order_by(Sample.id)
                .offset(size - 1)
                .limit(1)
            )
            # Bounds as literals: a plan made for this id range, not a generic one for any.
            low = literal(after, literal_execute=True)
            in_window = Sample.id > low
            if end is not None:
                in_window = and_(in_window, Sample.id <= literal(end, literal_execute=True))
            rows = self.read(
                session,
                self.base.where(in_window, self.rank == RULE_RANK, where).order_by(Sample.id),
            )
            for row in rows:
                if self.disagrees_with_rule(row) == keep:
                    yield Ranked(row.sample_id, [REASONS[RULE_RANK]] if keep else [])
            if end is None:
                return
            after, size = end, min(size * 2, LAST_WINDOW)
