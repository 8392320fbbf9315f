"""Dense CRF refinement with pydensecrf, over an image's own labels only.

CRF cost grows with the number of labels, so the score volume holds background plus
the image's classes, never all 21 or 81. Two unary forms (docs/method.md, section 2):
'probabilities' (unary_from_softmax; PSA/SEAM) and 'labels' (unary_from_labels on the
argmax with gt_prob; IRN/BAS/AMN).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pydensecrf.densecrf as dcrf
from pydensecrf.utils import unary_from_labels, unary_from_softmax

from pipeline.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class CRFParams:
    unary: str = "probabilities"  # or 'labels'
    iterations: int = 10
    gaussian: tuple[float, float] = (3, 3)  # sxy, compat
    bilateral: tuple[float, float, float] = (80, 13, 10)  # sxy, srgb, compat
    gt_prob: float = 0.7  # 'labels' only: confidence given to the argmax label
    # The image long side the spatial widths (the sxy values) are meant for: they scale
    # by long side / reference_size, so VOC-tuned kernels (~500 px images) keep their
    # reach on smaller or larger images. None: the widths are used as given.
    reference_size: float | None = None

    def __post_init__(self) -> None:
        if self.unary not in ("probabilities", "labels"):
            raise ConfigError(f"crf.unary must be 'probabilities' or 'labels', got {self.unary!r}")


def dense_crf(image: np.ndarray, scores: np.ndarray, params: CRFParams) -> np.ndarray:
    """Refined label index (into the first axis of `scores`) for every pixel.

    image (H, W, 3) uint8; scores (n, H, W), non-negative, larger = more likely.
    """
    return dense_crf_marginals(image, scores, params).argmax(0)


def dense_crf_marginals(image: np.ndarray, scores: np.ndarray, params: CRFParams) -> np.ndarray:
    """The CRF's (n, H, W) marginal probabilities after inference (argmax = `dense_crf`)."""
    n, h, w = scores.shape
    if image.shape[:2] != (h, w):
        raise ValueError(f"image {image.shape[:2]} and scores {(h, w)} differ in size")
    if n == 1:
        return np.ones((1, h, w), dtype=np.float32)
    crf = dcrf.DenseCRF2D(w, h, n)
    if params.unary == "probabilities":
        probs = scores / np.maximum(scores.sum(0, keepdims=True), 1e-8)
        unary = unary_from_softmax(probs.astype(np.float32))
    else:
        unary = unary_from_labels(scores.argmax(0), n, gt_prob=params.gt_prob, zero_unsure=False)
    crf.setUnaryEnergy(np.ascontiguousarray(unary))
    scale = 1.0 if params.reference_size is None else max(h, w) / params.reference_size
    sxy, compat = params.gaussian
    crf.addPairwiseGaussian(sxy=sxy * scale, compat=compat)
    sxy, srgb, compat = params.bilateral
    crf.addPairwiseBilateral(sxy=sxy * scale, srgb=srgb, rgbim=np.ascontiguousarray(image), compat=compat)
    return np.asarray(crf.inference(params.iterations), dtype=np.float32).reshape(n, h, w)
