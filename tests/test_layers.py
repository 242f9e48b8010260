"""The layers hold: one kernel under the API, the worker and the trainer; the client on the API's
schemas; the command line on top (the contracts are in pyproject.toml's [tool.importlinter])."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=120
    )


def test_every_layer_imports_only_what_lies_below_it() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout


def test_a_worker_reaching_into_the_api_breaks_the_contract(tmp_path: Path) -> None:
    for package in ("app", "workers", "training"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    jobs = tmp_path / "workers" / "jobs.py"
    jobs.write_text(jobs.read_text() + "\nfrom app.services import batches  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    assert "The worker imports the kernel, never the API" in result.stdout
    assert "workers.jobs -> app.services.batches" in result.stdout
