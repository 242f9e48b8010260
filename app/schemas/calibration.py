"""API shapes of a judge's calibration against gold labels."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FapCalibration(BaseModel):
    n: int = Field(description="Gold-labelled answers with a final-answer verdict row.")
    accuracy: float = Field(description="Share whose verdict matches the gold label.")
    precision: float | None = Field(
        description="Of the answers judged wrong, the share gold-wrong."
    )
    recall: float | None = Field(description="Of the gold-wrong answers, the share judged wrong.")
    unparseable: int = Field(description="Answers whose judge reply did not parse (no verdict).")


class ScpCalibration(BaseModel):
    wrong_n: int = Field(description="Gold-wrong answers with a labelled first_wrong_step.")
    wrong_accuracy: float | None = Field(
        description="Of those, the share where the judge names the same first wrong step "
        "(a null label matches a judge that finds no wrong step)."
    )
    correct_n: int = Field(description="Gold-correct answers.")
    correct_accuracy: float | None = Field(
        description="Of those, the share the judge leaves without an error."
    )
    f1: float | None = Field(
        description="Harmonic mean of wrong_accuracy and correct_accuracy (ProcessBench)."
    )


class Calibration(BaseModel):
    fap: FapCalibration
    scp: ScpCalibration | None = Field(description="None for the rule judge (final answers only).")
    notes: list[str]


class Agreement(BaseModel):
    """Whether the judge agrees with an answer's gold label."""

    fap: bool = Field(description="The final-answer verdict matches gold.correct.")
    scp: bool | None = Field(
        description="The judge's first wrong step matches gold (for a gold-correct answer: it "
        "found no error); None where not measured."
    )
