"""The versions of the installed packages that change numbers, for manifests and benches.

Read from the installed distributions' metadata (no import), so recording them is cheap.
"""

from __future__ import annotations

from importlib import metadata

# distribution name -> the name a reader knows it by
NUMERIC_PACKAGES = {"torch": "torch", "torchvision": "torchvision", "timm": "timm", "numpy": "numpy",
                    "pillow": "pillow", "scipy": "scipy", "scikit-image": "scikit-image",
                    "mmsegmentation": "mmseg", "mmengine": "mmengine", "mmcv-lite": "mmcv-lite", "mmcv": "mmcv",
                    "pydensecrf2": "pydensecrf", "opencv-python": "opencv-python"}


def package_versions() -> dict[str, str]:
    """{package: version} of those installed among `NUMERIC_PACKAGES`."""
    found = {}
    for dist, name in NUMERIC_PACKAGES.items():
        try:
            found[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found
