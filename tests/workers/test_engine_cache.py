"""A worker keeps models loaded and unloads the least recently used before loading one more
than MAX_LOADED_MODELS, or when free memory is short of what the next model needs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from workers.engines import memory, registry


class ClosableEngine:
    """Stands in for a loaded model; records being closed."""

    supports_json_schema = False

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, ClosableEngine]]:
    made: dict[str, ClosableEngine] = {}

    def factory(model: str, models_dir: Path, device: str, options):  # type: ignore[no-untyped-def]
        made[model] = ClosableEngine(model)
        return made[model]

    monkeypatch.setitem(registry.ENGINE_FACTORIES, "hf", factory)
    registry.clear_engine_cache()
    yield made
    registry.clear_engine_cache()


def load(model: str, max_loaded: int | None = None) -> object:
    return registry.load_engine(
        engine="hf", model=model, models_dir=Path("."), max_loaded=max_loaded
    )


def test_past_max_loaded_models_the_least_recently_used_is_unloaded(
    loads: dict[str, ClosableEngine],
) -> None:
    load("a", 2)
    load("b", 2)
    assert load("a", 2) is loads["a"]  # a used again: b is now the least recently used
    load("c", 2)
    assert registry.loaded_models() == [("hf", "a"), ("hf", "c")]
    assert loads["b"].closed and not loads["a"].closed
    load("b", 2)  # loaded afresh
    assert registry.loaded_models() == [("hf", "c"), ("hf", "b")]


def test_short_memory_unloads_until_the_next_model_fits(
    loads: dict[str, ClosableEngine], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    big = tmp_path / "big"
    big.mkdir()
    (big / "model.safetensors").write_bytes(b"\0" * 1000)
    (big / "config.json").write_text("{}")  # not weights: not counted
    assert memory.bytes_needed(str(big)) == 2000
    load("a")
    load("b")
    free = iter([1500, 2500])  # short once; after unloading a, enough
    monkeypatch.setattr(memory, "available_bytes", lambda device: next(free))
    load(str(big))
    assert registry.loaded_models() == [("hf", "b"), ("hf", str(big))]
    assert loads["a"].closed


def test_host_memory_is_read_from_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   1000 kB\n")
    assert memory.host_available_bytes(meminfo) == 1000 * 1024
    assert memory.available_bytes("cpu") > 0
