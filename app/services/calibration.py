"""How good is this judge on your data: its decisions on gold-labelled answers, measured.

FAP: accuracy, and precision and recall of `wrong`, over the gold-labelled answers the judge
has judged; an answer a person reviewed counts too, its newest review as its label. SCP
(ProcessBench's measure): on gold-wrong answers with a labelled first wrong
step, the share where the judge names that step (a null label, "only the final line is wrong",
matches a judge that says no step is wrong); on gold-correct answers, the share the judge leaves
without an error; `f1` is their harmonic mean."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session, aliased

from app.kernel.models import Review, Sample, Verdict
from app.kernel.models.statuses import SignalKind, VerdictOutcome
from app.schemas.calibration import Agreement, Calibration, FapCalibration, ScpCalibration

RULE_VERSION = "rule-v1"
"""The rule verifier's version on its verdicts: it checks final answers only."""
FINAL_LINE = "final_line"
"""The judge's first wrong step when it finds none: only the final line is wrong."""


@dataclass(frozen=True)
class JudgedGold:
    """One gold-labelled answer and what the judge said about it."""

    gold: dict[str, Any]
    fap_verdict: str | None
    """correct / wrong; None when the reply did not parse."""
    by_rule: bool
    scp_outcome: str | None
    """None while no first-error analysis is stored."""
    scp_step: int | None


def judge_step(item: JudgedGold) -> int | str | None:
    """The judge's first wrong step: a number, FINAL_LINE, or None when it named none."""
    if item.scp_outcome == VerdictOutcome.NO_STEP_ERROR:
        return FINAL_LINE
    if item.scp_outcome == "parsed":
        return item.scp_step
    return None


def agreement(item: JudgedGold) -> Agreement:
    """Whether the judge's final-answer verdict, and its first wrong step, match the gold label."""
    gold_correct = bool(item.gold["correct"])
    fap = item.fap_verdict == ("correct" if gold_correct else "wrong")
    return Agreement(fap=fap, scp=scp_agreement(item))


def scp_agreement(item: JudgedGold) -> bool | None:
    """None where the step signal is not measured: rule judge, no step label, analysis pending."""
    if item.by_rule:
        return None
    if item.gold["correct"]:
        return item.fap_verdict == "correct"
    if "first_wrong_step" not in item.gold:
        return None
    if item.fap_verdict != "wrong":
        return False  # the judge found no error in a wrong answer
    if item.scp_outcome is None:
        return None
    wanted = item.gold["first_wrong_step"]
    return judge_step(item) == (FINAL_LINE if wanted is None else wanted)


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def calibrate(items: Sequence[JudgedGold], *, analysed: bool = True) -> Calibration | None:
    """The calibration figures of a batch's judged, gold-labelled answers (None without any);
    `analysed`: whether the batch asks the judge for first errors (pairing.scp)."""
    if not items:
        return None
    gold_wrong = [not item.gold["correct"] for item in items]
    said_wrong = [item.fap_verdict == "wrong" for item in items]
    caught = sum(g and s for g, s in zip(gold_wrong, said_wrong, strict=True))
    fap = FapCalibration(
        n=len(items),
        accuracy=sum(agreement(item).fap for item in items) / len(items),
        precision=ratio(caught, sum(said_wrong)),
        recall=ratio(caught, sum(gold_wrong)),
        unparseable=sum(item.fap_verdict is None for item in items),
    )
    notes = []
    if any(item.by_rule for item in items):
        notes.append(
            "judge 'rule' checks final answers only: calibrated on the final-answer verdict "
            "(fap); no first-wrong-step figures (scp)"
        )
        return Calibration(fap=fap, scp=None, notes=notes)
    if not analysed:
        notes.append("pairing.scp is off: the judge names no first wrong step, so no scp figures")
        return Calibration(fap=fap, scp=None, notes=notes)
    wrong = [
        a for item in items if not item.gold["correct"] if (a := scp_agreement(item)) is not None
    ]
    right = [item.fap_verdict == "correct" for item in items if item.gold["correct"]]
    wrong_accuracy, correct_accuracy = ratio(sum(wrong), len(wrong)), ratio(sum(right), len(right))
    f1 = None
    if wrong_accuracy is not None and correct_accuracy is not None:
        total = wrong_accuracy + correct_accuracy
        f1 = 2 * wrong_accuracy * correct_accuracy / total if total else 0.0
    if not wrong:
        notes.append("no gold-wrong answer with a labelled first_wrong_step: scp is incomplete")
    scp = ScpCalibration(
        wrong_n=len(wrong),
        wrong_accuracy=wrong_accuracy,
        correct_n=len(right),
        correct_accuracy=correct_accuracy,
        f1=f1,
    )
    return Calibration(fap=fap, scp=scp, notes=notes)


def judged_gold(session: Session, batch_id: str) -> list[JudgedGold]:
    """The batch's gold-labelled answers that have a final-answer verdict row, with the judge's
    decisions. Gold is an answer's newest review, else the label it was given with (an index on
    gold answers, and one on reviews by batch, keep this cheap for batches without any)."""
    newest = (
        select(Review.sample_id, Review.after)
        .where(Review.batch_id == batch_id)
        .ext(distinct_on(Review.sample_id))
        .order_by(Review.sample_id, Review.id.desc())
        .subquery()
    )
    given = judged(batch_id, Sample.gold, Sample.gold.is_not(None))
    reviewed = judged(batch_id, newest.c.after, newest.c.after.is_not(None)).join(
        newest, newest.c.sample_id == Sample.id
    )
    labels: dict[int, JudgedGold] = {}
    for query, from_review in ((given, False), (reviewed, True)):
        for sample_id, label, verdict, version, outcome, step in session.execute(query):
            labels[sample_id] = JudgedGold(
                gold=review_gold(label) if from_review else label,
                fap_verdict=verdict,
                by_rule=version == RULE_VERSION,
                scp_outcome=outcome,
                scp_step=step,
            )
    return [labels[sample_id] for sample_id in sorted(labels)]


def judged(batch_id: str, label: Any, condition: Any) -> Select[Any]:
    """The batch's answers meeting `condition` that have a final-answer verdict row: id, the
    `label` column, the judge's verdict, prompt version, first-error outcome and step."""
    fap, scp = aliased(Verdict), aliased(Verdict)
    return (
        select(
            Sample.id,
            label,
            fap.verdict,
            fap.prompt_version,
            scp.outcome,
            scp.wrong_step_number,
        )
        .join(fap, and_(fap.sample_id == Sample.id, fap.kind == SignalKind.FAP))
        .outerjoin(scp, and_(scp.sample_id == Sample.id, scp.kind == SignalKind.SCP))
        .where(Sample.batch_id == batch_id, condition)
    )


def review_gold(after: dict[str, Any]) -> dict[str, Any]:
    """A review as a gold label: correct, and a wrong answer's first wrong step (null: none)."""
    if after["final_answer_correct"]:
        return {"correct": True}
    return {"correct": False, "first_wrong_step": after["first_wrong_step"]}


def batch_calibration(session: Session, batch_id: str, *, analysed: bool) -> Calibration | None:
    """The batch's calibration so far, or None when it has no judged gold-labelled answer."""
    return calibrate(judged_gold(session, batch_id), analysed=analysed)
