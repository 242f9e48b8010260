"""Which first-error analysis makes an answer's SCP pair under the batch's scp_method."""

from __future__ import annotations

from app.kernel.consensus import agreement
from app.kernel.models import Verdict
from app.kernel.models.statuses import VerdictOutcome
from app.kernel.pairing import StepCorrection


def step_correction(
    method: str, sample_id: int, scp: Verdict | None, rollout: Verdict | None
) -> StepCorrection | None:
    """The analysis an SCP pair is built from: the judge's (judge; consensus, only where the
    rollouts name the same step), or the rollouts' on-policy correction (rollouts)."""
    if method == "rollouts":
        source = rollout
    elif method == "consensus":
        source = scp if agreement(scp, rollout) == "agree" else None
    else:
        source = scp
    if source is None or source.outcome != VerdictOutcome.PARSED:
        return None
    if source.wrong_step is None or source.correction is None:
        return None
    return StepCorrection(
        sample_id=sample_id,
        correct_prefix=source.correct_prefix or "",
        wrong_step=source.wrong_step,
        correction=source.correction,
    )
