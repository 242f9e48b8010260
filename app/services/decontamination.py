"""Checking preference pairs against eval files: which pairs share a 13-word n-gram or a whole
normalised question with an eval question. Pairs are read in keyset pages; the eval set is
indexed once (in parts when it is large)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from app.kernel.decontamination import (
    MAX_INDEX_NGRAMS,
    NGRAM_SIZE,
    index_parts,
    match_prompt,
    questions_matching,
    user_texts,
)
from app.kernel.errors import InvalidInputError
from app.kernel.files import stored_file_path
from app.kernel.models import Dataset, DatasetPair, PreferencePair, Prompt, TrainingFile

PAGE_SIZE = 1000
"""Pairs read per query: only their prompt messages and question, never chosen or rejected."""

PairPages = Callable[[], Iterator[Sequence[Any]]]
"""Starts a fresh pass over some pairs: pages of (pair id, prompt messages, question)."""


@dataclass
class Scan:
    """What a pass of pairs over an eval set found."""

    eval_questions: int = 0
    questions_matching: int = 0
    pairs_checked: int = 0
    flags: dict[int, tuple[bool, bool]] = field(default_factory=dict)
    """Flagged pair id -> (shares an n-gram, same normalised question)."""

    def count(self, which: int) -> int:
        return sum(1 for flag in self.flags.values() if flag[which])


def check_eval_files(
    session: Session, file_ids: list[str], *, project_id: str, field_name: str
) -> None:
    """Each id names an eval file of this project; else an error naming the list position."""
    purposes: dict[str, str] = {
        file_id: purpose
        for file_id, purpose in session.execute(
            select(TrainingFile.id, TrainingFile.purpose).where(
                TrainingFile.id.in_(file_ids), TrainingFile.project_id == project_id
            )
        )
    }
    for position, file_id in enumerate(file_ids):
        where = f"{field_name}[{position}]"
        if file_id not in purposes:
            raise InvalidInputError(f"{where}: file {file_id!r} not found")
        if purposes[file_id] != "eval":
            raise InvalidInputError(
                f"{where}: file {file_id} has purpose {purposes[file_id]!r}; only files of "
                "purpose 'eval' hold eval questions"
            )


def file_questions(paths: Iterable[Path]) -> Iterator[str]:
    """The questions of stored eval files (validated on upload), line by line."""
    for path in paths:
        with path.open("rb") as lines:
            for raw in lines:
                if raw.strip():
                    yield json.loads(raw)["question"]


def scan_pairs(
    questions: Iterable[str], pages: PairPages, *, max_ngrams: int = MAX_INDEX_NGRAMS
) -> Scan:
    """Match every pair against every eval question: one pass over the pairs per index part."""
    scan = Scan()
    for part_number, index in enumerate(index_parts(questions, max_ngrams)):
        scan.eval_questions += len(index.questions)
        shared_ngrams: set[int] = set()
        shared_exact: set[int] = set()
        for page in pages():
            for pair_id, prompt, question in page:
                if part_number == 0:
                    scan.pairs_checked += 1
                match = match_prompt(index, user_texts(prompt), question)
                if not match.flagged:
                    continue
                shared_ngrams |= match.ngrams
                if match.exact is not None:
                    shared_exact.add(match.exact)
                ngram, exact = scan.flags.get(pair_id, (False, False))
                scan.flags[pair_id] = (
                    ngram or bool(match.ngrams),
                    exact or match.exact is not None,
                )
        scan.questions_matching += questions_matching(index, shared_ngrams, shared_exact)
    return scan


def dataset_pages(session: Session, dataset_id: str, page_size: int = PAGE_SIZE) -> PairPages:
    """Pages of a dataset's pairs, by pair id."""

    def pages() -> Iterator[Sequence[Any]]:
        after = 0
        while True:
            page = session.execute(
                select(DatasetPair.pair_id, PreferencePair.prompt, Prompt.question)
                .join(PreferencePair, PreferencePair.id == DatasetPair.pair_id)
                .join(Prompt, Prompt.id == PreferencePair.prompt_id)
                .where(
                    DatasetPair.dataset_id == dataset_id,
                    DatasetPair.pair_id > after,
                    # Said of both tables: else the planner may walk all pairs from the first
                    # to reach the page (seen: 0.4 s a page where 25 ms will do).
                    PreferencePair.id > after,
                )
                .order_by(DatasetPair.pair_id)
                .limit(page_size)
            ).all()
            if not page:
                return
            yield page
            after = page[-1][0]

    return pages


def project_pages(session: Session, project_id: str, page_size: int = PAGE_SIZE) -> PairPages:
    """Pages of the pairs in any of the project's datasets, each pair once: batch by batch (the
    batches the datasets were frozen from), by pair id, keeping pairs some dataset holds."""
    datasets = session.execute(
        select(Dataset.id, Dataset.selection).where(Dataset.project_id == project_id)
    ).all()
    dataset_ids = [dataset_id for dataset_id, _ in datasets]
    batch_ids = sorted({b for _, selection in datasets for b in selection.get("batch_ids", [])})
    # A lookup in the membership table's primary key (dataset_id, pair_id) per dataset.
    in_a_dataset = exists().where(
        DatasetPair.dataset_id.in_(dataset_ids), DatasetPair.pair_id == PreferencePair.id
    )

    def pages() -> Iterator[Sequence[Any]]:
        for batch_id in batch_ids:
            after = 0
            while True:
                page = session.execute(
                    select(PreferencePair.id, PreferencePair.prompt, Prompt.question)
                    .join(Prompt, Prompt.id == PreferencePair.prompt_id)
                    .where(
                        PreferencePair.batch_id == batch_id,
                        PreferencePair.id > after,
                        in_a_dataset,
                    )
                    .order_by(PreferencePair.id)
                    .limit(page_size)
                ).all()
                if not page:
                    break
                yield page
                after = page[-1][0]

    return pages


def decontaminate_dataset(
    session: Session, dataset: Dataset, file_ids: list[str], *, files_dir: Path, drop: bool
) -> dict[str, Any]:
    """Check the dataset's pairs against the eval files, drop the flagged ones if `drop`, and
    say what was found (the dataset's `contamination`)."""
    paths = [
        stored_file_path(files_dir, file_id, field=f"decontaminate_against[{position}]")
        for position, file_id in enumerate(file_ids)
    ]
    pages = dataset_pages(session, dataset.id, PAGE_SIZE)
    scan = scan_pairs(file_questions(paths), pages, max_ngrams=MAX_INDEX_NGRAMS)
    flagged = sorted(scan.flags)
    if drop:
        for start in range(0, len(flagged), PAGE_SIZE):
            session.execute(
                delete(DatasetPair).where(
                    DatasetPair.dataset_id == dataset.id,
                    DatasetPair.pair_id.in_(flagged[start : start + PAGE_SIZE]),
                )
            )
    return {
        "eval_files": file_ids,
        "ngram_size": NGRAM_SIZE,
        "eval_questions": scan.eval_questions,
        "questions_matching": scan.questions_matching,
        "pairs_checked": scan.pairs_checked,
        "ngram": scan.count(0),
        "exact_question": scan.count(1),
        "pairs_flagged": len(flagged),
        "pairs_dropped": len(flagged) if drop else 0,
    }


def eval_file_overlap(session: Session, path: Path, *, project_id: str) -> dict[str, Any]:
    """How an eval file (stored or about to be) overlaps the pairs of the project's datasets."""
    datasets = session.scalar(
        select(func.count()).select_from(Dataset).where(Dataset.project_id == project_id)
    )
    pages = project_pages(session, project_id, PAGE_SIZE)
    scan = scan_pairs(file_questions([path]), pages, max_ngrams=MAX_INDEX_NGRAMS)
    return {
        "ngram_size": NGRAM_SIZE,
        "datasets_checked": datasets or 0,
        "pairs_checked": scan.pairs_checked,
        "pairs_matching": len(scan.flags),
        "questions_matching": scan.questions_matching,
    }
