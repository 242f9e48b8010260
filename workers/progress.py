"""A chunk's progress while a worker runs it: tokens decoded, answers generated and judged that
the batch's stored counts do not show yet, written to Redis at most every PROGRESS_INTERVAL_S
in one pipelined write (app/kernel/progress.py reads it for the batch summary)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis
from redis.exceptions import RedisError

from app.kernel.progress import PROGRESS_TTL_S, ChunkFigures, progress_key
from workers.chunk_store import ChunkWork
from workers.engines.progress import watched_by

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 2.0
"""Least time between two writes of one chunk's figures (a call's start and end always write)."""
SAMPLE, FAP, SCP, ROLLOUT = "sample", "fap", "scp", "rollout"
"""The model calls of a chunk, in order: the phases its fraction is counted over."""


def chunk_phases(
    *, judged_by_rule: bool, scp: bool, judge_analysis: bool = True, rollouts: bool = False
) -> tuple[str, ...]:
    """The model calls a chunk makes: sampling; the judge's verdicts (none for the rule
    verifier); its first-error analyses (SCP by the judge); the rounds of rollouts."""
    phases = [SAMPLE]
    if not judged_by_rule:
        phases.append(FAP)
        if scp and judge_analysis:
            phases.append(SCP)
    if scp and rollouts:
        phases.append(ROLLOUT)
    return tuple(phases)


class ChunkProgress:
    """What one run of a chunk's stage has done so far; also the watcher of its model calls."""

    def __init__(
        self,
        redis: Redis | None,
        prefix: str,
        *,
        batch_id: str,
        chunk_id: int,
        prompts: int,
        phases: tuple[str, ...],
        interval_s: float | None = None,
    ) -> None:
        self.redis = redis
        self.key = progress_key(prefix, batch_id)
        self.field = str(chunk_id)
        self.prompts = prompts
        self.phases = phases
        self.interval_s = PROGRESS_INTERVAL_S if interval_s is None else interval_s
        self.started_at = time.time()
        self.written_at = 0.0
        self.phase = 0
        self.call_fraction = 0.0
        self.part = (0, 1)
        """Which of a phase's calls runs, of how many (rollouts: a round of at most n)."""
        self.tokens = 0
        self.samples = 0
        self.judged = 0
        self.at_call_start = (0, 0, 0)

    @classmethod
    def unreported(cls) -> ChunkProgress:
        """Progress kept nowhere: for a stage run outside a worker's job (tests, tools)."""
        return cls(None, "", batch_id="", chunk_id=0, prompts=0, phases=(SAMPLE, FAP, SCP, ROLLOUT))

    @contextmanager
    def call(self, phase: str, part: tuple[int, int] = (0, 1)) -> Iterator[None]:
        """A model call of this phase (`part`: the i-th of a phase's n calls, counted as 1/n of
        it): engines inside report their decoding steps here."""
        self.phase = self.phases.index(phase)
        self.part = (min(part[0], part[1] - 1), part[1])
        self.call_fraction = 0.0
        self.at_call_start = (self.tokens, self.samples, self.judged)
        self.write(force=True)
        with watched_by(self):
            yield

    def decoded(self, *, tokens: int, finished: int, fraction: float) -> None:
        """An engine's report of one decoding step (GenerationWatcher)."""
        self.tokens += tokens
        if self.phases[self.phase] == SAMPLE:
            self.samples += finished
        elif self.phases[self.phase] in (FAP, SCP):  # a rollout's continuations are neither
            self.judged += finished
        self.call_fraction = fraction
        self.write()

    def call_done(self, *, tokens: int, answers: int) -> None:
        """The call returned: its exact figures replace what its steps reported (or stand for
        an engine that reports no steps)."""
        tokens_before, samples_before, judged_before = self.at_call_start
        self.tokens = tokens_before + tokens
        if self.phases[self.phase] == SAMPLE:
            self.samples = samples_before + answers
        elif self.phases[self.phase] in (FAP, SCP):
            self.judged = judged_before + answers
        self.call_fraction = 1.0
        self.write(force=True)

    def stored(self) -> None:
        """The answers and verdicts counted so far are stored: the batch's counts show them."""
        self.samples = self.judged = 0
        self.at_call_start = (self.tokens, 0, 0)
        self.write(force=True)

    def figures(self) -> ChunkFigures:
        return ChunkFigures(
            prompts=self.prompts,
            fraction=round((self.phase + self.phase_fraction()) / len(self.phases), 4),
            tokens=self.tokens,
            samples=self.samples,
            judged=self.judged,
            started_at=self.started_at,
            updated_at=time.time(),
        )

    def phase_fraction(self) -> float:
        """How much of the running phase is done: its earlier calls and this call's share."""
        done, of = self.part
        return (done + self.call_fraction) / of

    def write(self, *, force: bool = False) -> None:
        """Write the figures, unless written less than interval_s ago (and not forced)."""
        if self.redis is None:
            return
        if not force and time.monotonic() - self.written_at < self.interval_s:
            return
        self.written_at = time.monotonic()
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.hset(self.key, self.field, self.figures().as_json())
                pipe.expire(self.key, PROGRESS_TTL_S)
                pipe.execute()
        except RedisError:
            log.debug("progress of chunk %s not written", self.field, exc_info=True)

    def clear(self) -> None:
        """The stage ended: what it did is in the stored counts (or will be done again)."""
        if self.redis is None:
            return
        try:
            self.redis.hdel(self.key, self.field)
        except RedisError:
            log.debug("progress of chunk %s not cleared", self.field, exc_info=True)


def chunk_progress(redis: Redis, prefix: str, work: ChunkWork) -> ChunkProgress:
    """The progress of a claimed chunk's stage, reported to Redis."""
    options = work.options
    return ChunkProgress(
        redis,
        prefix,
        batch_id=work.batch_id,
        chunk_id=work.chunk_id,
        prompts=len(work.prompts),
        phases=chunk_phases(
            judged_by_rule=options.judged_by_rule,
            scp=options.pairing.scp,
            judge_analysis=options.uses_judge_analysis,
            rollouts=options.uses_rollouts,
        ),
    )
