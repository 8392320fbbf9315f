"""Resume mmengine training under torch.load's `weights_only=True` default.

mmengine's checkpoints hold, besides tensors, its log history (HistoryBuffer with
numpy arrays and scalars). torch refuses those globals by default, so resume fails.
Rather than loading arbitrary pickles, `mmengine_checkpoint_globals()` allow-lists
exactly what these checkpoints contain, and it is only in force while the stage's
own runner trains. The one `getattr` they need (pickle's way of naming
`HistoryBuffer.min` and friends) is replaced by a function that resolves nothing else.
"""

from __future__ import annotations

import contextlib
import pickle
from typing import Iterator

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from numpy._core.multiarray import _reconstruct, scalar

_DTYPES = [type(np.dtype(t)) for t in (np.float64, np.int64)]  # the dtypes of the logged values
_STATISTICS = ("min", "max", "current", "mean")  # registered by HistoryBuffer itself


def history_buffer_statistic(owner: object, name: str):
    """The `getattr` of an mmengine checkpoint: only HistoryBuffer's statistics methods."""
    if owner is HistoryBuffer and (name in _STATISTICS or name in HistoryBuffer._statistics_methods):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f"checkpoint asks for getattr({owner!r}, {name!r}), which an mmengine "
                                 "checkpoint never does; refusing to load it")


def checkpoint_globals() -> list:
    return [
        HistoryBuffer,
        np.ndarray,
        np.dtype,
        *_DTYPES,
        _reconstruct,
        scalar,
        (history_buffer_statistic, "builtins.getattr"),
    ]


@contextlib.contextmanager
def mmengine_checkpoint_globals() -> Iterator[None]:
    with torch.serialization.safe_globals(checkpoint_globals()):
        yield
