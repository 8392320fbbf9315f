"""Let mmsegmentation import on mmcv-lite, which has no compiled ops.

mmseg imports `mmcv.ops` at import time (point_sample, sigmoid_focal_loss) although
DeepLab never calls a compiled op. Full mmcv 2.1 does not compile against recent torch
(README, 'mmcv'), so where mmcv's compiled extension is missing, `install()`
registers a small `mmcv.ops` in its place: `point_sample` in plain PyTorch, and for
any other name a placeholder that raises a clear error the moment a config uses it.
Where full mmcv is installed, `install()` does nothing.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import warnings

from pipeline.errors import ConfigError

MODULE = "mmcv.ops"


def point_sample(input: torch.Tensor, points: torch.Tensor, align_corners: bool = False, **kwargs) -> torch.Tensor:
    """mmcv.ops.point_sample: sample (N, C, H, W) at points in [0, 1]^2 given as
    (N, P, 2) -> (N, C, P), or (N, Hg, Wg, 2) -> (N, C, Hg, Wg)."""
    import torch.nn.functional as F

    flat = points.dim() == 3
    grid = points.unsqueeze(2) if flat else points
    out = F.grid_sample(input, 2.0 * grid - 1.0, align_corners=align_corners, **kwargs)
    return out.squeeze(3) if flat else out


class MissingOp:
    """Stands in for a compiled mmcv op; using it (call or construct) raises."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **kwargs):
        raise ConfigError(
            f"the config uses mmcv.ops.{self.name}, a compiled mmcv op, but only mmcv-lite is installed "
            f"(this pipeline supplies mmcv.ops.point_sample alone). Choose a model that does not need "
            f"{self.name}, or install full mmcv with compiled ops (mmcv>=2.0,<2.2 built for your torch)."
        )

    def __repr__(self) -> str:
        return f"<missing compiled mmcv op {self.name}>"


def has_compiled_ops() -> bool:
    return importlib.util.find_spec("mmcv") is not None and importlib.util.find_spec("mmcv._ext") is not None


def install() -> bool:
    """Register the fallback `mmcv.ops` if mmcv's compiled ops are missing.

    Returns True when the fallback is (or already was) in place, False when full mmcv
    is installed and nothing was done. Call it before importing mmseg.
    """
    current = sys.modules.get(MODULE)
    if getattr(current, "__pipeline_fallback__", False):
        return True
    if has_compiled_ops():
        return False
    import mmcv  # mmcv-lite: the package without `_ext`

    ops = types.ModuleType(MODULE, "pure-PyTorch stand-in for mmcv.ops (pipeline.segmenter.mmcv_compat)")
    ops.__pipeline_fallback__ = True
    ops.point_sample = point_sample

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return MissingOp(name)

    ops.__getattr__ = __getattr__
    # mmcv.cnn warns that its deformable attention is unavailable: expected on mmcv-lite.
    warnings.filterwarnings("ignore", message="Fail to import ``MultiScaleDeformableAttention``")
    for name in [m for m in sys.modules if m.startswith(MODULE + ".")]:
        del sys.modules[name]  # leftovers of a failed `import mmcv.ops`
    sys.modules[MODULE] = ops
    mmcv.ops = ops
    return True
