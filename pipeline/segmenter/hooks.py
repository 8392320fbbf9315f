"""mmengine hook for exact resume of the segmenter's training.

mmengine's resume restores weights, optimiser, schedule and log, and replays the data
loader up to the resumed iteration (so the sampler's order and the data workers'
augmentation draws repeat). It does not restore torch's generator in the main
process, which the model's own draws (dropout) use: this hook keeps its state (CPU and
CUDA) in every checkpoint and puts it back at the first iteration after a resume,
after the loader has been replayed.
"""

from __future__ import annotations

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

STATE_KEY = "torch_random_state"


@HOOKS.register_module()
class TorchRandomStateHook(Hook):
    priority = "VERY_LOW"

    def __init__(self) -> None:
        self._to_restore: dict | None = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[STATE_KEY] = {
            "cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._to_restore = checkpoint.get(STATE_KEY)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._to_restore is None:
            return
        torch.set_rng_state(self._to_restore["cpu"])
        if self._to_restore["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self._to_restore["cuda"])
        self._to_restore = None
