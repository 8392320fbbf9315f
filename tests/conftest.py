import pytest
from mmengine.config import Config

import stages  # noqa: F401  (registers the built-in stages, whose settings load_config checks overrides against)
from pipeline.config import load_config
from pipeline.segmenter import mmcv_compat

mmcv_compat.install()  # tests import mmseg directly (the stages install it where they reach mmseg)

TINY_CONFIG = "tests/tiny_config.py"
TINY_TRAIN = load_config(TINY_CONFIG).dataset.num_train  # the tiny set's training images


@pytest.fixture
def tiny_cfg() -> Config:
    """The default config on a tiny synthetic set with a one-epoch localizer."""
    return load_config(TINY_CONFIG)
