"""A chunk's wrong answers labelled by rollouts: the policy continues their step prefixes, the
batch's FAP judge checks the finished answers, and each answer's first wrong step is stored as
a "rollout" verdict. Every round's estimates are stored as they come, so a chunk killed
mid-search redoes only the rounds it had not stored."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.kernel.chunk_stats import TokenUsage
from app.kernel.context import ProcessContext
from app.kernel.models import PrefixRollout, Prompt, Sample, Verdict
from app.kernel.models.statuses import ROLLOUT_VERDICT, SignalKind
from app.kernel.queue import ModelRef
from workers import chunk_store
from workers.chunk_store import ChunkWork
from workers.engines.base import SamplingParams
from workers.judging import AnswerToJudge, JudgeSettings, judge_final_answers
from workers.lease import LeaseKeeper
from workers.loaded_models import engine_for
from workers.progress import ROLLOUT, ChunkProgress
from workers.rollouts import (
    PrefixEstimate,
    RolloutAnswer,
    Verify,
    label,
    most_rounds,
    run_search,
)
from workers.rule_judge import judge_by_rule

ROUND_SEED_STRIDE = 100_003
"""Keeps the seeds of a chunk's rollout rounds apart from the next chunk's."""


def rollout_prompt_version(work: ChunkWork) -> str:
    """What made a rollout verdict: the search and M (e.g. "rollouts-bisection-m8")."""
    judge = work.options.judge
    return f"rollouts-{judge.rollout_search}-m{judge.rollouts_per_step}"


def load_estimates(session: Session, sample_ids: list[int]) -> dict[int, dict[int, PrefixEstimate]]:
    """Every stored prefix estimate of these samples, by sample and prefix."""
    found: dict[int, dict[int, PrefixEstimate]] = {}
    rows = session.scalars(select(PrefixRollout).where(PrefixRollout.sample_id.in_(sample_ids)))
    for row in rows:
        found.setdefault(row.sample_id, {})[row.prefix_steps] = PrefixEstimate(
            prefix_steps=row.prefix_steps,
            rollouts=row.rollouts,
            successes=row.successes,
            unknown=row.unknown,
            successful=tuple(row.successful),
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
        )
    return found


def estimate_row(batch_id: str, sample_id: int, estimate: PrefixEstimate) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "sample_id": sample_id,
        "prefix_steps": estimate.prefix_steps,
        "rollouts": estimate.rollouts,
        "successes": estimate.successes,
        "unknown": estimate.unknown,
        "successful": [text.replace("\x00", "\ufffd") for text in estimate.successful],
        "prompt_tokens": estimate.prompt_tokens,
        "completion_tokens": estimate.completion_tokens,
    }


class ChunkVerifier:
    """The batch's FAP judge over finished continuations (rule, or one batched LLM call per
    round), counting the judge's tokens."""

    def __init__(
        self, context: ProcessContext, work: ChunkWork, references: dict[int, tuple[str, str]]
    ) -> None:
        self.context = context
        self.work = work
        self.references = references
        """sample id -> (question, reference answer)."""
        self.usage = TokenUsage()

    def __call__(self, finished: Sequence[tuple[int, str]]) -> list[bool | None]:
        if not finished:
            return []
        if self.work.options.judged_by_rule:
            return [
                judge_by_rule(text, self.references[sample_id][1]).verdict == "correct"
                for sample_id, text in finished
            ]
        judge = self.work.options.judge
        engine = engine_for(self.context, ModelRef.of(judge), project_id=self.work.project_id)
        answers = [
            AnswerToJudge(sample_id, *self.references[sample_id], text)
            for sample_id, text in finished
        ]
        settings = JudgeSettings(
            max_tokens=judge.max_tokens,
            temperature=judge.temperature,
            retries=self.context.settings.judge_retries,
        )
        judged = judge_final_answers(engine, answers, settings)
        self.usage += TokenUsage(
            judge_prompt_tokens=sum(item.prompt_tokens for item in judged),
            judge_completion_tokens=sum(item.completion_tokens for item in judged),
        )
        return [
            None if item.result.outcome != "parsed" else item.result.verdict == "correct"
            for item in judged
        ]


def label_missing_by_rollouts(
    context: ProcessContext,
    work: ChunkWork,
    samples: list[Sample],
    verdicts: dict[tuple[int, str], Verdict],
    lease: LeaseKeeper | None = None,
    progress: ChunkProgress | None = None,
) -> TokenUsage:
    """Rollout verdicts for every wrong answer without one; returns the tokens spent. With a
    lease, each round of model calls starts only while the run still holds it; each round
    moves the chunk's progress."""
    todo = [
        s
        for s in samples
        if (fap := verdicts.get((s.id, SignalKind.FAP))) is not None
        and fap.verdict == "wrong"
        and (s.id, ROLLOUT_VERDICT) not in verdicts
    ]
    if not todo:
        return TokenUsage()
    prompts: dict[int, Prompt] = {p.id: p for p in work.prompts}
    answers = [RolloutAnswer.of(s.id, prompts[s.prompt_id].question, s.text) for s in todo]
    stepless = [a for a in answers if not a.steps]
    answers = [a for a in answers if a.steps]
    usage = TokenUsage()
    rows = [stepless_row(work, answer) for answer in stepless]
    if answers:
        estimates, usage = search_chunk(context, work, answers, todo, prompts, lease, progress)
        rows += [
            rollout_verdict_row(work, answer, estimates[answer.sample_id]) for answer in answers
        ]
    context.transaction(lambda session: chunk_store.insert_verdicts(session, rows))
    return usage


def search_chunk(
    context: ProcessContext,
    work: ChunkWork,
    answers: list[RolloutAnswer],
    samples: list[Sample],
    prompts: dict[int, Prompt],
    lease: LeaseKeeper | None = None,
    progress: ChunkProgress | None = None,
) -> tuple[dict[int, dict[int, PrefixEstimate]], TokenUsage]:
    """Run every answer's search to its end from what is stored, storing each round."""
    progress = progress or ChunkProgress.unreported()
    if lease is not None:
        lease.check()
    policy, judge = work.options.policy, work.options.judge
    ids = [a.sample_id for a in answers]
    known = context.transaction(lambda session: load_estimates(session, ids))
    references = {
        s.id: (prompts[s.prompt_id].question, prompts[s.prompt_id].reference_answer or "")
        for s in samples
    }
    verify: Verify = ChunkVerifier(context, work, references)
    usage = TokenUsage()

    def store(found: list[tuple[int, PrefixEstimate]]) -> None:
        rows = [estimate_row(work.batch_id, sample_id, e) for sample_id, e in found]
        context.transaction(
            lambda session: chunk_store.insert_ignoring_duplicates(session, PrefixRollout, rows)
        )
        usage.rollout_prompt_tokens += sum(e.prompt_tokens for _, e in found)
        usage.rollout_completion_tokens += sum(e.completion_tokens for _, e in found)
        progress.call_done(tokens=sum(e.completion_tokens for _, e in found), answers=0)
        if lease is not None:
            lease.check()  # before the next round's model call

    engine = engine_for(context, ModelRef.of(policy), project_id=work.project_id)
    params = SamplingParams(
        n=judge.rollouts_per_step,
        temperature=policy.temperature,
        top_p=policy.top_p,
        max_tokens=policy.max_tokens,
        seed=None if policy.seed is None else policy.seed + ROUND_SEED_STRIDE * work.chunk_index,
    )
    rounds = max(most_rounds(len(a.steps), judge.rollout_search) for a in answers)
    estimates = run_search(
        engine,
        answers,
        params,
        verify,
        judge.rollout_search,
        known=known,
        store=store,
        round_call=lambda number: progress.call(ROLLOUT, part=(number, rounds)),
    )
    assert isinstance(verify, ChunkVerifier)
    return estimates, usage + verify.usage


def stepless_row(work: ChunkWork, answer: RolloutAnswer) -> dict[str, Any]:
    """The rollout verdict of an answer with no reasoning steps: nothing to search."""
    return {
        **verdict_base(work),
        "sample_id": answer.sample_id,
        "outcome": "failed_validation",
        "reason": "answer has no intermediate steps to analyse",
        "raw_output": "{}",
    }


def verdict_base(work: ChunkWork) -> dict[str, Any]:
    return {
        "batch_id": work.batch_id,
        "kind": ROLLOUT_VERDICT,
        "attempts": 1,
        "judge_model": work.options.policy.model,
        "prompt_version": rollout_prompt_version(work),
    }


def rollout_verdict_row(
    work: ChunkWork, answer: RolloutAnswer, estimates: dict[int, PrefixEstimate]
) -> dict[str, Any]:
    """The stored first wrong step, with the success estimate of every prefix visited."""
    found = label(answer, estimates, work.options.judge.rollout_search)
    return {
        **verdict_base(work),
        "sample_id": answer.sample_id,
        "outcome": found.outcome,
        "reason": found.reason,
        "correct_prefix": found.correct_prefix,
        "wrong_step": found.wrong_step,
        "wrong_step_number": found.first_wrong,
        "correction": found.correction,
        "raw_output": json.dumps(estimates_summary(estimates)),
        "prompt_tokens": sum(e.prompt_tokens for e in estimates.values()),
        "completion_tokens": sum(e.completion_tokens for e in estimates.values()),
    }


def estimates_summary(estimates: dict[int, PrefixEstimate]) -> dict[str, dict[str, int]]:
    """Per visited prefix (by its step count): rollouts, successes and unknown."""
    return {
        str(k): {"rollouts": e.rollouts, "successes": e.successes, "unknown": e.unknown}
        for k, e in sorted(estimates.items())
    }


def rollout_provenance(
    context: ProcessContext, work: ChunkWork, sample_ids: list[int]
) -> dict[int, dict[str, Any]]:
    """Per wrong answer searched by rollouts: the search, M, the first wrong step found and
    the success estimate of every prefix visited (for the provenance of its SCP pair)."""
    if not work.options.uses_rollouts or not sample_ids:
        return {}

    def read(session: Session) -> dict[int, dict[str, Any]]:
        verdicts = session.scalars(
            select(Verdict).where(
                Verdict.sample_id.in_(sample_ids), Verdict.kind == ROLLOUT_VERDICT
            )
        )
        estimates = load_estimates(session, sample_ids)
        judge = work.options.judge
        return {
            v.sample_id: {
                "search": judge.rollout_search,
                "rollouts_per_step": judge.rollouts_per_step,
                "first_wrong_step": v.wrong_step_number,
                "estimates": estimates_summary(estimates.get(v.sample_id, {})),
            }
            for v in verdicts
        }

    return context.transaction(read)
