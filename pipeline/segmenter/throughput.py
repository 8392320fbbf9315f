"""The segmenter's training at the hardware's pace: what mmengine's defaults leave on the table.

- `BF16OptimWrapper`: bf16 autocast without a gradient scaler. mmengine's AmpOptimWrapper
  scales the loss even in bf16, whose range needs no scaling, and its GradScaler reads
  `found_inf` back to the host at every step (a sync per iteration).
- `DeferredRuntimeInfoHook`: mmengine's RuntimeInfoHook calls `.item()` on every loss of
  every iteration (another sync); this one keeps them on the device and hands the message
  hub all of an interval's values with one transfer, before the logger and checkpoints
  read them. The logged history is the same, value for value.
- `ChannelsLastRunner`: converts the model to channels_last before mmengine wraps it in
  DDP (the tensor cores' layout for convolutions; converting after wrapping would
  break DDP's gradient buckets).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from mmengine.hooks import RuntimeInfoHook
from mmengine.optim import OptimWrapper
from mmengine.registry import HOOKS, OPTIM_WRAPPERS
from mmengine.runner import Runner


@OPTIM_WRAPPERS.register_module()
class BF16OptimWrapper(OptimWrapper):
    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            yield


@HOOKS.register_module()
class DeferredRuntimeInfoHook(RuntimeInfoHook):
    def __init__(self, interval: int = 50) -> None:
        super().__init__()
        self.interval = interval
        self._pending: list[dict] = []

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs: dict | None = None) -> None:
        if outputs is not None:
            self._pending.append({k: v.detach() if torch.is_tensor(v) else v for k, v in outputs.items()})
        if self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner):
            self.flush(runner)

    def flush(self, runner) -> None:
        """Every pending value into the message hub, in order: one device-to-host copy."""
        tensors = [v.float().mean() for outputs in self._pending for v in outputs.values() if torch.is_tensor(v)]
        values = iter(torch.stack(tensors).tolist() if tensors else [])
        for outputs in self._pending:
            for key, value in outputs.items():
                runner.message_hub.update_scalar(f"train/{key}", next(values) if torch.is_tensor(value) else value)
        self._pending.clear()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._pending:
            self.flush(runner)
            checkpoint["message_hub"] = runner.message_hub.state_dict()

    def after_train(self, runner) -> None:
        self.flush(runner)


class ChannelsLastRunner(Runner):
    def wrap_model(self, model_wrapper_cfg, model):
        if torch.cuda.is_available():
            model = model.to(memory_format=torch.channels_last)
        return super().wrap_model(model_wrapper_cfg, model)
