"""API shapes of a batch's rollouts: what they cost and how often they agree with the judge."""

from __future__ import annotations

from pydantic import BaseModel, Field


class JudgeRolloutAgreement(BaseModel):
    compared: int = Field(
        description="Wrong answers where both the judge and the rollouts decided (a first "
        "wrong step, or none)."
    )
    agree: int = Field(description="Of those, the ones where both name the same step.")
    disagree: int = Field(description="The rest: consensus makes no SCP pair from them.")
    rate: float | None = Field(description="agree / compared; null before any comparison.")


class RolloutReport(BaseModel):
    scp_method: str
    search: str = Field(description="bisection or linear.")
    rollouts_per_step: int = Field(description="M: continuations per prefix visited.")
    answers_searched: int = Field(description="Wrong answers with a rollout verdict.")
    labelled_answers: int = Field(description="Of those, the ones given a first wrong step.")
    outcomes: dict[str, int] = Field(
        description="Rollout verdicts by outcome: parsed (a first wrong step), no_step_error "
        "(every step's prefix can still succeed), no_success (nothing succeeds from the "
        "question alone), undecided (continuations cut at max_tokens), failed_validation "
        "(no steps)."
    )
    prefixes_rolled_out: int
    rollouts: int = Field(description="Continuations sampled, all prefixes together.")
    rollouts_per_labelled_answer: float | None
    rollout_tokens: int = Field(description="Prompt and completion tokens of the rollouts.")
    agreement: JudgeRolloutAgreement | None = Field(
        description="Judge vs rollouts on the same answers (consensus batches; null otherwise)."
    )
