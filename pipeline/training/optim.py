"""SGD with the heads at a larger learning rate, and a poly schedule over the true step count."""

from __future__ import annotations

import torch
from torch import nn


def build_sgd(model: nn.Module, heads: list[nn.Module], lr: float, head_lr_mult: float,
              momentum: float, weight_decay: float, train_biases: bool = True) -> torch.optim.SGD:
    """Two parameter groups: backbone at `lr`, heads at `lr * head_lr_mult`.

    Momentum and weight decay go to their own slots (the paper's code passed weight
    decay as momentum). `train_biases=False` leaves every bias (the backbone's
    BatchNorm biases) at its initial value, as the BAS reference's optimiser does.
    Parameters that do not require a gradient (frozen stages) are left out.
    """
    if not train_biases:
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.requires_grad_(False)
    trained = [p for p in model.parameters() if p.requires_grad]
    head_ids = {id(p) for head in heads for p in head.parameters()}
    backbone = [p for p in trained if id(p) not in head_ids]
    head = [p for p in trained if id(p) in head_ids]
    return torch.optim.SGD(
        [{"params": backbone, "lr": lr}, {"params": head, "lr": lr * head_lr_mult}],
        lr=lr, momentum=momentum, weight_decay=weight_decay,
    )


def poly_schedule(optimizer: torch.optim.Optimizer, total_steps: int, power: float):
    """lr_t = lr_0 * (1 - t / total_steps) ** power, stepped once per optimiser step."""
    return torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=total_steps, power=power)
