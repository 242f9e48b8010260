"""Review queue speed: a batch of N judged answers made straight in Postgres, then pages of
GET /v1/batches/{id}/review-queue as the service reads them (app.services.review_queue, no HTTP);
prints, per size, the milliseconds of the first page, a page from the middle of the queue and
the last page, then of the first page once nothing in the batch is doubtful (the median of
--repeats runs each).

    python -m benchmarks.review_queue                      # 5,000 and 100,000 answers
    python -m benchmarks.review_queue --answers 20000

The answers go into a throwaway database on DATABASE_URL's server (or on an embedded Postgres in
--data-dir when DATABASE_URL is unset), dropped at the end. Two answers per question (a right and
a wrong one, the reference a letter, so the rule check applies: an LLM judged them); about 1% of
the final-answer replies unparseable, 1% of the first-error analyses failed, 1% of the wrong
answers with rollouts naming another step, 1% of the verdicts against the rule verifier, 2% of the
answers reviewed.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.kernel.config import get_settings
from app.kernel.db.session import make_engine, make_session_factory
from app.launch import backing_services
from app.services.api_keys import create_key
from app.services.review_queue import review_queue
from benchmarks.download import throwaway_database

RIGHT = "Step 1: 2 + 2 makes 4.\nStep 2: Option B is 4.\nAnswer: B"
WRONG = "Step 1: 2 + 2 makes 5.\nStep 2: Option A is 5.\nAnswer: A"

MAKE_ANSWERS = [
    """INSERT INTO batches (id, project_id, status, policy, judge, pairing, total_prompts,
        chunk_size, created_at, completed_at)
    VALUES (:batch_id, :project_id, 'completed', '{"model": "bench-policy"}',
        '{"model": "bench-judge"}', '{}', :prompts, 64, now(), now())""",
    """INSERT INTO chunks (batch_id, index, status, stage, n_prompts, attempts, created_at)
    VALUES (:batch_id, 0, 'succeeded', 'judge', :prompts, 1, now())""",
    """INSERT INTO prompts (batch_id, index, custom_id, question, reference_answer, chunk_id)
    SELECT CAST(:batch_id AS varchar), i, 'q' || i, E'What is 2 + 2?\\nA. 5\\nB. 4', 'B',
        (SELECT id FROM chunks WHERE batch_id = CAST(:batch_id AS varchar))
    FROM generate_series(0, :prompts - 1) AS i""",
    """INSERT INTO samples (batch_id, prompt_id, sample_index, text, prompt_tokens,
        completion_tokens, policy_model, policy_prompt_version, finish_reason, created_at)
    SELECT CAST(:batch_id AS varchar), prompt.id, side,
        CASE WHEN side = 0 THEN CAST(:right AS text) ELSE CAST(:wrong AS text) END, 10, 10,
        'bench-policy', 'policy-v1', 'stop', now()
    FROM prompts AS prompt, generate_series(0, 1) AS side WHERE prompt.batch_id = :batch_id""",
    # Final-answer verdicts: ~1% unparseable, ~1% against the rule verifier (flipped).
    """INSERT INTO verdicts (batch_id, sample_id, kind, outcome, verdict, raw_output, attempts,
        judge_model, prompt_version, prompt_tokens, completion_tokens, created_at)
    SELECT CAST(:batch_id AS varchar), id, 'fap',
        CASE WHEN id % 97 = 0 THEN 'unparseable' ELSE 'parsed' END,
        CASE WHEN id % 97 = 0 THEN NULL
            WHEN (sample_index = 0) <> (id % 101 = 0) THEN 'correct' ELSE 'wrong' END,
        '', 1, 'bench-judge', 'fap-v2', 100, 30, now()
    FROM samples WHERE batch_id = :batch_id""",
    # First-error analyses of the wrong answers: ~1% failed validation.
    """INSERT INTO verdicts (batch_id, sample_id, kind, outcome, wrong_step, wrong_step_number,
        correction, raw_output, attempts, judge_model, prompt_version, prompt_tokens,
        completion_tokens, created_at)
    SELECT CAST(:batch_id AS varchar), id, 'scp',
        CASE WHEN id % 89 = 1 THEN 'failed_validation' ELSE 'parsed' END,
        'Step 1: 2 + 2 makes 5.', 1, 'Step 1: 2 + 2 makes 4.', '', 1, 'bench-judge', 'scp-v2',
        100, 30, now()
    FROM samples WHERE batch_id = :batch_id AND sample_index = 1""",
    # Rollouts naming step 2 where the judge named step 1: ~1% of the wrong answers.
    """INSERT INTO verdicts (batch_id, sample_id, kind, outcome, wrong_step, wrong_step_number,
        raw_output, attempts, judge_model, prompt_version, prompt_tokens, completion_tokens,
        created_at)
    SELECT CAST(:batch_id AS varchar), id, 'rollout', 'parsed', 'Step 2: Option A is 5.', 2,
        '', 1, 'bench-judge', 'rollout-v1', 0, 0, now()
    FROM samples WHERE batch_id = :batch_id AND sample_index = 1 AND id % 83 = 1""",
    """INSERT INTO reviews (batch_id, sample_id, project_id, reviewer, before, after, created_at)
    SELECT CAST(:batch_id AS varchar), id, CAST(:project_id AS varchar), 'bench', '{}',
        '{"final_answer_correct": true, "first_wrong_step": null, "correction": null}', now()
    FROM samples WHERE batch_id = :batch_id AND id % 50 = 7""",
    "ANALYZE",
]


def store_answers(session: Session, *, project_id: str, answers: int) -> str:
    """A completed batch of this project with `answers` judged answers, made in Postgres."""
    batch_id = f"batch_{uuid.uuid4().hex}"
    parameters = {
        "batch_id": batch_id,
        "project_id": project_id,
        "prompts": max(1, answers // 2),
        "right": RIGHT,
        "wrong": WRONG,
    }
    for statement in MAKE_ANSWERS:
        session.execute(text(statement), parameters)
    return batch_id


# The same batch with nothing to doubt: the judge agrees with the rule verifier and the
# rollouts everywhere, every reply parsed. The queue's worst case: to know that no answer has a
# reason, the rule check reads every answer.
CLEAR_DOUBTS = [
    """UPDATE verdicts SET outcome = 'parsed', verdict = CASE WHEN samples.sample_index = 0
        THEN 'correct' ELSE 'wrong' END
    FROM samples WHERE samples.id = verdicts.sample_id AND verdicts.kind = 'fap'
        AND verdicts.batch_id = :batch_id""",
    "UPDATE verdicts SET outcome = 'parsed' WHERE kind = 'scp' AND batch_id = :batch_id",
    "DELETE FROM verdicts WHERE kind = 'rollout' AND batch_id = :batch_id",
    "ANALYZE",
]


def median_ms(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def plain_ids(session: Session, batch_id: str) -> list[int]:
    """The answers the queue gives no reason for (its tail, by id), as MAKE_ANSWERS makes them."""
    return list(
        session.scalars(
            text(
                """SELECT id FROM samples WHERE batch_id = :batch_id AND id % 97 <> 0
                AND id % 101 <> 0 AND id % 50 <> 7 AND (sample_index = 0
                    OR (id % 89 <> 1 AND id % 83 <> 1)) ORDER BY id"""
            ),
            {"batch_id": batch_id},
        )
    )


def measure(
    session_factory: sessionmaker[Session], answers: int, *, page: int, repeats: int
) -> None:
    with session_factory.begin() as session:
        key = create_key(session, project=f"bench-queue-{uuid.uuid4().hex[:6]}", name="queue")
        project_id = key.key.project_id
        started = time.perf_counter()
        batch_id = store_answers(session, project_id=project_id, answers=answers)
    print(f"{answers:,} answers made in Postgres in {time.perf_counter() - started:.1f} s")

    def one_page(after: int | None) -> Callable[[], object]:
        def run() -> object:
            with session_factory() as session:
                return review_queue(
                    session, batch_id, project_id=project_id, limit=page, after=after
                )

        return run

    with session_factory() as session:
        first, _ = review_queue(session, batch_id, project_id=project_id, limit=page, after=None)
        plain = plain_ids(session, batch_id)
    print(f"  first page reasons: {[item.reasons for item in first[:3]]} …")
    middle, last = plain[len(plain) // 2], plain[-page - 1]
    for name, after in (("first page", None), ("middle page", middle), ("last page", last)):
        ms = median_ms(one_page(after), repeats)
        print(f"  {name:<12} limit={page}: {ms:8.1f} ms")
    with session_factory.begin() as session:
        for statement in CLEAR_DOUBTS:
            session.execute(text(statement), {"batch_id": batch_id})
    ms = median_ms(one_page(None), repeats)
    print(f"  first page, nothing to doubt (the worst case) limit={page}: {ms:8.1f} ms")


def main(
    answers: Annotated[
        str, typer.Option(help="Batch sizes to measure, comma-separated.")
    ] = "5000,100000",
    page: int = 20,
    repeats: int = 3,
    data_dir: Path = Path("data/bench"),
) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = get_settings().model_copy(update={"data_dir": data_dir})
    with (
        backing_services(settings, reclaim_running=False) as bound,
        throwaway_database(bound.require_database_url()) as database_url,
    ):
        engine = make_engine(database_url)
        try:
            for size in (int(n) for n in answers.split(",")):
                measure(make_session_factory(engine), size, page=page, repeats=repeats)
        finally:
            engine.dispose()


if __name__ == "__main__":
    typer.run(main)
