"""How much memory a model needs and how much is free: what decides when a worker unloads the
least recently used model before loading another."""

from __future__ import annotations

import sys
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
LOAD_FACTOR = 2
"""A model needs about twice its weight files while it loads (file pages plus tensors)."""


def weight_bytes(location: str) -> int:
    """Size of the weight files in a model folder; 0 when `location` is not a folder (a hub id,
    a model a server holds), so only MAX_LOADED_MODELS bounds it."""
    folder = Path(location).expanduser()
    if not folder.is_dir():
        return 0
    return sum(
        path.stat().st_size
        for path in folder.rglob("*")
        if path.suffix in WEIGHT_SUFFIXES and path.is_file()
    )


def bytes_needed(location: str) -> int:
    """Free memory a model should find before it loads."""
    return LOAD_FACTOR * weight_bytes(location)


def available_bytes(device: str) -> int:
    """Free memory where the model goes: the GPU's for a CUDA device, else the host's
    MemAvailable (what the kernel can give without swapping)."""
    if device.startswith("cuda") and "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            free, _total = torch.cuda.mem_get_info(torch.device(device))
            return int(free)
    return host_available_bytes()


def host_available_bytes(meminfo: Path = Path("/proc/meminfo")) -> int:
    """MemAvailable from /proc/meminfo, in bytes."""
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024  # the kernel reports kB
    raise RuntimeError(f"{meminfo}: no MemAvailable line")


def release_freed_memory() -> None:
    """Give memory of dropped models back: collect cycles, empty CUDA's cache where torch has
    CUDA (its allocator keeps freed blocks otherwise)."""
    import gc

    gc.collect()
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
