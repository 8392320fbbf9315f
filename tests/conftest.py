import pytest
from mmengine.config import Config

from pipeline.config import load_config

TINY = {"dataset.num_train": 10, "dataset.num_val": 4}


@pytest.fixture
def tiny_cfg() -> Config:
    """The default config on a tiny synthetic set."""
    return load_config("configs/default.py", TINY)
