"""A real worker process for the fault tests, serving hf:canned-policy and hf:canned-judge:
`python -m tests.faults.fault_worker`. Settings come from the environment like any worker's;
FAULT_POLICY_DELAY_S and FAULT_JUDGE_DELAY_S slow each model call, FAULT_POISON makes the policy
raise on prompts containing it, FAULT_KILL_ON makes it SIGKILL this process on such prompts."""

from __future__ import annotations

import logging
import os

from app.kernel.config import Settings
from tests.faults.faulty_engines import FaultyPolicy, SlowJudge, serve_from_registry
from workers.worker import run_worker


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    serve_from_registry(
        FaultyPolicy(
            delay_s=float(os.environ.get("FAULT_POLICY_DELAY_S", "0")),
            poison=os.environ.get("FAULT_POISON", ""),
            kill_on=os.environ.get("FAULT_KILL_ON", ""),
        ),
        SlowJudge(delay_s=float(os.environ.get("FAULT_JUDGE_DELAY_S", "0"))),
    )
    run_worker(Settings(policies=["hf:canned-policy"], judges=["hf:canned-judge"]))


if __name__ == "__main__":
    main()
