"""A file the database lists but whose stored bytes are gone (a files folder cleared or lost
under it): every route that reads it answers 409 naming the field, shows no path, and stores
nothing; before, each one was a 500."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.kernel.config import Settings
from app.kernel.files import uploaded_file_path
from app.kernel.models import Batch, Dataset, Evaluation
from tests.api.test_decontamination import eval_file, training_batch


def test_routes_that_read_a_lost_file_answer_409_and_store_nothing(
    client: TestClient,
    settings: Settings,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    batch_id = training_batch(session_factory)
    kept, lost = eval_file(client), eval_file(client)
    uploaded_file_path(settings.files_dir, lost).unlink()
    gone = f"the contents of file {lost} are no longer stored on the server; upload the file again"

    evaluation = client.post(
        "/v1/evaluations",
        json={"model": "canned-policy", "judge": {"model": "rule"}, "file_id": lost},
    )
    dataset = client.post(
        "/v1/datasets",
        json={"name": "checked", "batch_ids": [batch_id], "decontaminate_against": [kept, lost]},
    )
    content = client.get(f"/v1/files/{lost}/content")

    assert (evaluation.status_code, evaluation.json()["detail"]) == (
        409,
        f"file_id: {gone} and use the new id",
    )
    assert (dataset.status_code, dataset.json()["detail"]) == (
        409,
        f"decontaminate_against[1]: {gone} and use the new id",
    )
    assert (content.status_code, content.json()["detail"]) == (
        409,
        f"file_id: {gone} and use the new id",
    )
    for response in (evaluation, dataset, content):
        assert str(settings.files_dir) not in response.text
    with session_factory() as session:
        counts = {
            model.__name__: session.scalar(select(func.count()).select_from(model))
            for model in (Evaluation, Dataset)
        }
        hidden = session.scalar(select(func.count()).where(Batch.kind == "evaluation"))
    assert counts == {"Evaluation": 0, "Dataset": 0} and hidden == 0
    assert client.get(f"/v1/files/{kept}/content").status_code == 200
