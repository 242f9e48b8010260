"""Whether the judge and the rollouts name the same first wrong step of an answer: shared by
the worker (consensus keeps only agreeing pairs) and the API (the batch's agreement rate)."""

from __future__ import annotations

from typing import Literal, Protocol

from app.kernel.models.statuses import VerdictOutcome

Agreement = Literal["agree", "disagree"]
DECIDED = (VerdictOutcome.PARSED, VerdictOutcome.NO_STEP_ERROR)


class StepLabel(Protocol):
    """What a first-error verdict (judge's or rollouts') says."""

    outcome: str
    wrong_step_number: int | None
    wrong_step: str | None


def agreement(scp: StepLabel | None, rollout: StepLabel | None) -> Agreement | None:
    """Whether judge and rollouts name the same first wrong step (or both none); None when
    either has not decided (unparseable, undecided, no success, ...)."""
    if scp is None or rollout is None:
        return None
    if scp.outcome not in DECIDED or rollout.outcome not in DECIDED:
        return None
    if scp.outcome != rollout.outcome:
        return "disagree"
    if scp.outcome == VerdictOutcome.NO_STEP_ERROR:
        return "agree"
    if scp.wrong_step_number is not None and rollout.wrong_step_number is not None:
        same = scp.wrong_step_number == rollout.wrong_step_number
    else:  # scp-v1 quotes the step instead of numbering it
        same = _squash(scp.wrong_step) == _squash(rollout.wrong_step)
    return "agree" if same else "disagree"


def _squash(text: str | None) -> str:
    return " ".join((text or "").split())
