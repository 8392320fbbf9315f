"""Pseudo-masks for weakly supervised semantic segmentation, following BAS.

`pipeline` is the library: config loading, the stage runner, data sets and I/O.
The stages themselves live in the top-level `stages` package, one module each.
"""

__version__ = "0.1.0"
