"""An evaluation's report from SQL aggregates: questions grouped by (task, samples, correct),
so Python sees a few rows per task whatever the number of questions."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.kernel.eval_scores import pass_at_k, wilson_interval
from app.schemas.evaluation import Score, TaskReport

DEFAULT_TASK = "default"

# Per question (scored once every sample has its FAP row): samples, correct ones, truncated and
# unparseable ones (no final answer read), and whether its majority answer is correct. Then
# questions are counted per (task, samples, correct). Votes go to an answer's `vote`: its final
# answer lowercased and trimmed, and a number written any way (`12`, `12.0`, `$1,200.00`,
# `12 %`) as the number itself (trim_scale: Postgres 13+), so one answer is not split into
# several that each lose the vote.
REPORT_SQL = text(
    """
WITH answers AS (
    SELECT s.prompt_id, s.sample_index, v.id AS verdict_id, v.outcome, v.verdict,
           nullif(lower(btrim(v.extracted_answer)), '') AS final_answer
    FROM samples AS s
    LEFT JOIN verdicts AS v ON v.sample_id = s.id AND v.kind = 'fap'
    WHERE s.batch_id = :batch_id
), numbers AS (
    SELECT answers.*, regexp_replace(final_answer, '[$€£,% ]', '', 'g') AS bare
    FROM answers
), voted AS (
    SELECT numbers.*,
           CASE WHEN bare ~ '^[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)$'
                THEN trim_scale(bare::numeric)::text
                ELSE final_answer END AS vote
    FROM numbers
), per_question AS (
    SELECT prompt_id,
           count(*) AS n,
           count(*) FILTER (WHERE verdict = 'correct') AS c,
           count(*) FILTER (WHERE outcome = 'truncated') AS truncated,
           count(*) FILTER (
               WHERE outcome = 'unparseable' OR (outcome = 'parsed' AND final_answer IS NULL)
           ) AS unparseable,
           count(verdict_id) AS judged
    FROM answers GROUP BY prompt_id
), votes AS (
    SELECT DISTINCT ON (prompt_id) prompt_id, correct
    FROM (
        SELECT prompt_id, vote, count(*) AS votes,
               bool_or(verdict = 'correct') AS correct, min(sample_index) AS first_index
        FROM voted
        WHERE outcome = 'parsed' AND final_answer IS NOT NULL
        GROUP BY prompt_id, vote
    ) AS answer_votes
    ORDER BY prompt_id, votes DESC, first_index
)
SELECT coalesce(p.metadata ->> 'task', :default_task) AS task, q.n, q.c,
       count(*) AS questions,
       count(*) FILTER (WHERE votes.correct) AS majority_correct,
       sum(q.truncated) AS truncated,
       sum(q.unparseable) AS unparseable
FROM per_question AS q
JOIN prompts AS p ON p.id = q.prompt_id
LEFT JOIN votes ON votes.prompt_id = q.prompt_id
WHERE q.judged = q.n AND q.n >= :samples
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""
)


@dataclass
class Tally:
    """Questions of one task (or of all), summed from the grouped rows."""

    questions: int = 0
    accuracy_sum: float = 0.0
    pass_sum: float = 0.0
    majority_correct: int = 0
    truncated: int = 0
    unparseable: int = 0

    def add(self, n: int, c: int, k: int, questions: int, majority: int) -> None:
        self.questions += questions
        self.accuracy_sum += questions * c / n
        self.pass_sum += questions * pass_at_k(n, c, min(k, n))
        self.majority_correct += majority

    def report(self, samples: int) -> TaskReport:
        several = samples > 1
        return TaskReport(
            questions=self.questions,
            accuracy=score(self.accuracy_sum, self.questions),
            pass_at_k=score(self.pass_sum, self.questions) if several else None,
            majority=score(self.majority_correct, self.questions) if several else None,
            truncated=self.truncated,
            unparseable=self.unparseable,
        )


def score(successes: float, n: int) -> Score | None:
    """A share with its Wilson interval over n questions; None before any question is scored.
    A mean of per-question shares (samples > 1) takes the questions as n: samples of one
    question are not independent."""
    if n == 0:
        return None
    low, high = wilson_interval(successes, n)
    return Score(value=successes / n, low=low, high=high, n=n)


@dataclass
class EvaluationReport:
    overall: TaskReport
    by_task: dict[str, TaskReport] = field(default_factory=dict)

    @property
    def truncated(self) -> int:
        return self.overall.truncated

    @property
    def unparseable(self) -> int:
        return self.overall.unparseable


def evaluation_report(session: Session, batch_id: str, *, samples: int) -> EvaluationReport:
    """Accuracy (and for samples > 1 pass@k and majority vote) overall and per task, over the
    questions scored so far."""
    overall = Tally()
    tasks: dict[str, Tally] = {}
    rows = session.execute(
        REPORT_SQL, {"batch_id": batch_id, "samples": samples, "default_task": DEFAULT_TASK}
    )
    for row in rows:
        for tally in (overall, tasks.setdefault(row.task, Tally())):
            tally.add(row.n, row.c, samples, row.questions, row.majority_correct)
            tally.truncated += int(row.truncated)
            tally.unparseable += int(row.unparseable)
    return EvaluationReport(
        overall=overall.report(samples),
        by_task={task: tally.report(samples) for task, tally in tasks.items()},
    )
