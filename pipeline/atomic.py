"""Atomic file writes: write to a temporary file beside the target, then rename.

A crash mid-write leaves only a `.tmp-*` file, never a file under the final name, so
"the file exists" always means "the file is complete". Per-item resume relies on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

TMP_MARKER = ".tmp-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success it is renamed to `path`, on error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the real suffix last so libraries that pick a format by extension still can.
    tmp = path.with_name(f"{path.stem}{TMP_MARKER}{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_lines(path: str | os.PathLike, lines: list[str]) -> None:
    write_text(path, "".join(f"{line}\n" for line in lines))


def save_image(path: str | os.PathLike, image: Image.Image, **save_kwargs: Any) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, **save_kwargs)


def save_npz(path: str | os.PathLike, compress: bool = True, **arrays: np.ndarray) -> None:
    """Like np.savez(_compressed), but byte-identical for identical arrays (numpy stamps
    each member with the current time; here the time is fixed)."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=method) as archive:
            for name, array in arrays.items():
                member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                member.compress_type = method
                with archive.open(member, "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)


class BackgroundWriter:
    """Runs writes in threads while the caller computes the next item (file writes and
    zlib release the GIL). At most `pending` writes wait, bounding memory; leaving the
    `with` block waits for all of them and raises the first error."""

    def __init__(self, threads: int = 2, pending: int = 16):
        from concurrent.futures import ThreadPoolExecutor

        self.pool, self.pending, self.futures = ThreadPoolExecutor(threads), pending, []

    def submit(self, write, *args, **kwargs) -> None:
        self.futures.append(self.pool.submit(write, *args, **kwargs))
        while len(self.futures) > self.pending:
            self.futures.pop(0).result()

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, *exc) -> None:
        try:
            for future in self.futures:
                if exc[0] is None:
                    future.result()
                else:
                    future.cancel()
        finally:
            self.pool.shutdown(wait=True)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, os.PathLike)):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
