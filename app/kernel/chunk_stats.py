"""What the runs of a chunk did, in one type: written by the worker into the chunk's row, added
up over a batch's chunks by the batch summary."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TokenUsage(BaseModel):
    policy_prompt_tokens: int = 0
    policy_completion_tokens: int = 0
    judge_prompt_tokens: int = 0
    judge_completion_tokens: int = 0
    rollout_prompt_tokens: int = 0
    rollout_completion_tokens: int = 0
    """Continuations of step prefixes sampled from the policy (scp_method rollouts, consensus)."""

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            **{name: getattr(self, name) + getattr(other, name) for name in TokenUsage.model_fields}
        )

    @property
    def total(self) -> int:
        return sum(getattr(self, name) for name in TokenUsage.model_fields)


class ChunkStats(BaseModel):
    usage: TokenUsage = Field(default_factory=TokenUsage)
    """Tokens of every run of every stage, added up."""
    pairs_dropped: dict[str, int] | None = None
    """Candidate pairs the last pair filter dropped, by reason; None until pairs were built."""

    def then(self, latest: ChunkStats) -> ChunkStats:
        """These stats followed by a later run's: usage adds up, the latest drop counts win."""
        return ChunkStats(
            usage=self.usage + latest.usage,
            pairs_dropped=self.pairs_dropped
            if latest.pairs_dropped is None
            else latest.pairs_dropped,
        )
