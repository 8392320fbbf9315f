"""Data sets: the prepared-data-set index every stage reads, and its sources.

Importing this package registers the built-in sources in `DATASETS`
(`pipeline/datasets/registry.py` holds the contract).
"""

from pipeline.datasets.registry import DATASETS, DataSource, build_data_source
from pipeline.datasets import coco, folder, synthetic, voc  # noqa: F401  (register the built-in sources)

__all__ = ["DATASETS", "DataSource", "build_data_source"]
