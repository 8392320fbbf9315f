"""Did BAS learn each class's masks? A GT-free check on the trained localizer.

BAS trains its foreground map M_c so that erasing it from the features takes away the
class's evidence: L_bas = ReLU(S_bg) / ReLU(S), the class score left after erasing over the
score before (1 where erasing raised it). After training, in eval mode and on the training
images, that ratio should be small for every class. A class whose mean stays high has masks
that miss its objects: its seeds will be poor whatever the threshold, and the run can say
so without GT (on the synthetic default, one run's failed class kept 95 % of its score while
every class of the seven other runs kept at most 14 %: docs/results.md).

The localizer must offer `background_activation(images, labels)` (BAS does; the CAM and
DRS erase nothing, so the check does not apply to them).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

# A class's masks miss its objects where erasing them leaves more than half its score, on
# average over its training images (BAS drives the ratio towards 0; the paper's L_bas).
MASKS_MISS_ABOVE = 0.5


def background_activation_per_class(model, dataset, ids: Iterable[str], scale: float = 1.0) -> dict[str, dict]:
    """Per class name with images in `ids`: {'images': n, 'mean': mean L_bas}, each image
    resized by `scale` (the scale the localizer trained at). As in L_bas, an image where
    the class scores <= 0 before and after erasing counts 0 (there is no score to take)."""
    import torch
    import torch.nn.functional as F

    from pipeline.images import to_normalized_tensor

    device = next(model.parameters()).device
    sums = np.zeros(dataset.num_classes + 1)
    counts = np.zeros(dataset.num_classes + 1, dtype=np.int64)
    with torch.inference_mode():
        for image_id in ids:
            classes = dataset.labels[image_id]
            if classes:
                x = to_normalized_tensor(dataset.load_image(image_id))[None].to(device)
                if scale != 1.0:
                    x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
                labels = torch.zeros(1, dataset.num_classes, device=device)
                labels[0, [c - 1 for c in classes]] = 1
                ratios = model.background_activation(x, labels)[0].cpu().numpy()
                for c in classes:
                    sums[c] += ratios[c - 1]
                    counts[c] += 1
    return {dataset.classes[c]: {"images": int(counts[c]), "mean": float(sums[c] / counts[c])}
            for c in range(1, len(counts)) if counts[c]}


def classes_whose_masks_miss(per_class: dict[str, dict]) -> list[str]:
    return [name for name, s in per_class.items() if s["mean"] > MASKS_MISS_ABOVE]
