"""The review queue ranked in Postgres gives what ranking every answer in Python gives: the same
answers, reasons and order, page after page, from any cursor."""

from __future__ import annotations

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from app.kernel.consensus import agreement
from app.kernel.models import Batch, Prompt, Review, Sample, Verdict
from app.kernel.models.statuses import ROLLOUT_VERDICT
from app.kernel.verifiable import rule_verdict
from app.services.api_keys import create_key
from app.services.review_queue import REASONS, review_queue
from benchmarks.review_queue import store_answers

# Rollouts of other shapes than the benchmark's: a quote instead of a number (whitespace aside
# the same step, or another), no step error, undecided; and no step error on both sides.
SHAPES = [
    """UPDATE verdicts SET wrong_step_number = NULL, wrong_step = E'Step 1:  2 + 2\\tmakes 5. '
    WHERE batch_id = :batch_id AND kind = 'rollout' AND sample_id % 3 = 0""",
    """UPDATE verdicts SET wrong_step_number = NULL, wrong_step = 'Step 2: Option A is 5.'
    WHERE batch_id = :batch_id AND kind = 'rollout' AND sample_id % 3 = 1""",
    """INSERT INTO verdicts (batch_id, sample_id, kind, outcome, wrong_step, wrong_step_number,
        raw_output, attempts, judge_model, prompt_version, prompt_tokens, completion_tokens,
        created_at)
    SELECT batch_id, sample_id, 'rollout',
        CASE WHEN sample_id % 5 = 0 THEN 'no_step_error' WHEN sample_id % 5 = 1 THEN 'undecided'
            ELSE 'parsed' END,
        wrong_step, wrong_step_number, '', 1, 'j', 'rollout-v1', 0, 0, now()
    FROM verdicts
    WHERE batch_id = :batch_id AND kind = 'scp' AND sample_id % 7 = 3
        AND sample_id NOT IN (SELECT sample_id FROM verdicts WHERE kind = 'rollout')""",
    """UPDATE verdicts SET outcome = 'no_step_error', wrong_step = NULL, wrong_step_number = NULL
    WHERE batch_id = :batch_id AND kind = 'scp' AND sample_id % 7 = 3 AND sample_id % 2 = 0""",
    """UPDATE verdicts SET outcome = 'truncated', verdict = NULL
    WHERE batch_id = :batch_id AND kind = 'fap' AND sample_id % 61 = 0""",
    """UPDATE prompts SET reference_answer = CASE WHEN index % 2 = 0 THEN '' ELSE NULL END
    WHERE batch_id = :batch_id AND index % 13 = 0""",
]


def expected_queue(session: Session, batch_id: str, *, by_rule: bool) -> list[tuple[int, list]]:
    """Every answer ranked in Python, as the queue did before it was ranked in SQL."""
    fap, scp, rollout = aliased(Verdict), aliased(Verdict), aliased(Verdict)
    reviewed = {row for row in session.scalars(select(Review.sample_id))}
    rows = session.execute(
        select(Sample, Prompt.reference_answer, fap, scp, rollout)
        .join(Prompt, Prompt.id == Sample.prompt_id)
        .join(fap, (fap.sample_id == Sample.id) & (fap.kind == "fap"))
        .outerjoin(scp, (scp.sample_id == Sample.id) & (scp.kind == "scp"))
        .outerjoin(rollout, (rollout.sample_id == Sample.id) & (rollout.kind == ROLLOUT_VERDICT))
        .where(Sample.batch_id == batch_id, fap.outcome != "truncated")
    ).all()
    ranked = []
    for sample, reference, fap_row, scp_row, rollout_row in rows:
        if sample.id in reviewed:
            continue
        reasons = []
        if fap_row.outcome == "unparseable" or (scp_row and scp_row.outcome == "unparseable"):
            reasons.append("judge_unparseable")
        if scp_row is not None and scp_row.outcome == "failed_validation":
            reasons.append("failed_validation")
        if agreement(scp_row, rollout_row) == "disagree":
            reasons.append("rollout_disagreement")
        if not by_rule and fap_row.verdict is not None and reference:
            by_rule_verdict = rule_verdict(sample.text, reference)
            if by_rule_verdict is not None and by_rule_verdict != fap_row.verdict:
                reasons.append("rule_disagreement")
        rank = min((REASONS.index(r) for r in reasons), default=len(REASONS))
        ranked.append((rank, sample.id, reasons))
    return [(sample_id, reasons) for _, sample_id, reasons in sorted(ranked)]


def walk(
    session_factory: sessionmaker[Session], batch_id: str, project_id: str, *, limit: int
) -> list[tuple[int, list]]:
    """The whole queue, page after page, as a client reads it."""
    seen: list[tuple[int, list]] = []
    after = None
    while True:
        with session_factory() as session:
            items, more = review_queue(
                session, batch_id, project_id=project_id, limit=limit, after=after
            )
        seen += [(item.id, item.reasons) for item in items]
        assert len(items) == limit or not more
        if not more:
            return seen
        after = items[-1].id


def test_the_queue_ranked_in_sql_matches_every_answer_ranked_in_python(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        project_id = create_key(session, project="queue-ranking", name="k").key.project_id
        batch_id = store_answers(session, project_id=project_id, answers=1200)
        for statement in SHAPES:
            session.execute(text(statement), {"batch_id": batch_id})
    with session_factory() as session:
        expected = expected_queue(session, batch_id, by_rule=False)
    reasons = {reason for _, found in expected for reason in found}
    assert reasons == set(REASONS)  # every reason is there to rank
    assert len(expected) > 1000

    assert walk(session_factory, batch_id, project_id, limit=7) == expected
    assert walk(session_factory, batch_id, project_id, limit=100) == expected

    # From any answer of the queue: the ones after it; from one not in it: the top.
    with session_factory() as session:
        for index in (0, 5, 30, 60, len(expected) // 2, len(expected) - 2):
            items, _ = review_queue(
                session, batch_id, project_id=project_id, limit=3, after=expected[index][0]
            )
            assert [(i.id, i.reasons) for i in items] == expected[index + 1 : index + 4]
        reviewed = session.scalar(select(Review.sample_id).limit(1))
        items, _ = review_queue(session, batch_id, project_id=project_id, limit=3, after=reviewed)
        assert [(i.id, i.reasons) for i in items] == expected[:3]

    # Judged by rule: no rule check, the rest as before.
    with session_factory.begin() as session:
        session.execute(update(Batch).where(Batch.id == batch_id).values(judge={"engine": "rule"}))
    with session_factory() as session:
        by_rule = expected_queue(session, batch_id, by_rule=True)
    assert "rule_disagreement" not in {reason for _, found in by_rule for reason in found}
    assert walk(session_factory, batch_id, project_id, limit=50) == by_rule
