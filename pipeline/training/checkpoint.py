"""Checkpoints written atomically; only finite-loss states are ever saved."""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.atomic import atomic_path


def save_checkpoint(path: Path, **state) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    # Our own checkpoints hold tensors, numbers and plain containers: weights_only suffices.
    return torch.load(path, map_location=map_location, weights_only=True)
