"""A batch's options, as the API validated them and as the worker reads them back from the
batch row: one set of types from the door to the model call."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.kernel.config import get_settings
from app.kernel.json_values import unstorable_part


class StrictModel(BaseModel):
    """What a caller sends: unknown fields refused, and every value one Postgres and strict JSON
    can hold (no NUL character, no NaN or Infinity, at any depth of a free-form object)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        problem = unstorable_part(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class EngineName(StrEnum):
    HF = "hf"
    """transformers, on CPU or GPU."""
    VLLM = "vllm"
    """vLLM inside the worker."""
    OPENAI = "openai"
    """An OpenAI-compatible server."""
    RULE = "rule"
    """The rule verifier: judges final answers without a model (judge only)."""


POLICY_ENGINES = (EngineName.HF, EngineName.VLLM, EngineName.OPENAI)
JUDGE_ENGINES = (*POLICY_ENGINES, EngineName.RULE)


def known_engine(engine: str, allowed: tuple[EngineName, ...]) -> EngineName:
    if engine not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}, got {engine!r}")
    return EngineName(engine)


ScpPromptVersion = Literal["scp-v1", "scp-steps-v1"]
ScpMethod = Literal["judge", "rollouts", "consensus"]
RolloutSearch = Literal["bisection", "linear"]
PairingStrategy = Literal["round_robin", "all"]
PairPrompt = Literal["question", "as_sampled"]


class PolicyOptions(StrictModel):
    model: str = Field(default_factory=lambda: get_settings().default_policy_model, min_length=1)
    engine: str = Field(default_factory=lambda: get_settings().default_policy_engine)
    samples_per_prompt: int = Field(default=4, ge=1, le=1024)
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(
        default=1024,
        ge=1,
        le=131_072,
        description="An answer cut at this length is stored as truncated: not judged, no pair.",
    )
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    prompt_version: Literal["policy-v1", "direct-v1"] = Field(
        default="policy-v1",
        description="policy-v1: numbered steps, then one Answer line (the method's); direct-v1: "
        "the Answer line only (direct-answer evaluations).",
    )

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, engine: str) -> EngineName:
        return known_engine(engine, POLICY_ENGINES)


class JudgeOptions(StrictModel):
    model: str = Field(default_factory=lambda: get_settings().default_judge_model, min_length=1)
    engine: str = Field(default_factory=lambda: get_settings().default_judge_engine)
    max_tokens: int = Field(default=256, ge=16, le=131_072)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    fap_prompt_version: Literal["fap-v1"] = "fap-v1"
    scp_prompt_version: ScpPromptVersion = Field(
        default="scp-steps-v1",
        description="scp-steps-v1 has the judge pick a step number (robust for small judges); "
        "scp-v1 has it quote the prefix and the wrong step, checked against the answer.",
    )
    scp_method: ScpMethod = Field(
        default="judge",
        description="How wrong answers get their first wrong step: judge (the SCP analysis), "
        "rollouts (the policy finishes the answer from step prefixes, the FAP judge checks the "
        "finished answers; the first step whose prefix has no success is wrong), or consensus "
        "(both; an SCP pair only where they name the same step).",
    )
    rollouts_per_step: int = Field(
        default=8,
        ge=1,
        le=64,
        description="M: continuations sampled from each step prefix the search visits.",
    )
    rollout_search: RolloutSearch = Field(
        default="bisection",
        description="Which prefixes are rolled out: bisection (OmegaPRM's, about log2 of the "
        "steps) or linear (every prefix from the first, until one has no success).",
    )

    @model_validator(mode="before")
    @classmethod
    def _rule_needs_no_model(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("model") == EngineName.RULE and "engine" not in data:
            return {**data, "engine": EngineName.RULE}
        if isinstance(data, dict) and data.get("engine") == EngineName.RULE and "model" not in data:
            return {**data, "model": EngineName.RULE.value}
        return data

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, engine: str) -> EngineName:
        return known_engine(engine, JUDGE_ENGINES)


class PairingOptions(StrictModel):
    fap: bool = True
    scp: bool = True
    strategy: PairingStrategy = "round_robin"
    max_pairs_per_prompt: int = Field(default=16, ge=1, le=1024)
    max_pair_tokens: int = Field(default=2048, ge=16, le=131_072)
    prompt: PairPrompt = Field(
        default="question",
        description="The pairs' prompt: the bare question (the paper's), or as_sampled: the "
        "system prompt and worked examples the policy answered in, so DPO scores the answers "
        "in the context that produced them (longer pairs; the trained model then expects it).",
    )


class BatchSettings(StrictModel):
    """The options of a batch the worker needs, read back from its row."""

    policy: PolicyOptions
    judge: JudgeOptions
    pairing: PairingOptions

    @classmethod
    def of_row(
        cls, policy: dict[str, Any], judge: dict[str, Any], pairing: dict[str, Any]
    ) -> BatchSettings:
        return cls(
            policy=PolicyOptions.model_validate(policy),
            judge=JudgeOptions.model_validate(judge),
            pairing=PairingOptions.model_validate(pairing),
        )

    @property
    def judged_by_rule(self) -> bool:
        return self.judge.engine == EngineName.RULE

    @property
    def uses_rollouts(self) -> bool:
        """Whether wrong answers get first wrong steps from rollouts (rollouts or consensus)."""
        return self.judge.scp_method in ("rollouts", "consensus")

    @property
    def uses_judge_analysis(self) -> bool:
        """Whether wrong answers get the judge's first-error analysis (judge or consensus)."""
        return self.judge.scp_method in ("judge", "consensus") and not self.judged_by_rule
