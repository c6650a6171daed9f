"""Archives of scans with known ground truth, and the bad inputs the operator must survive."""

from __future__ import annotations

import os
from pathlib import Path

from airflow_provider_delix.emulator.scans import (
    corrupt_png,
    make_multipage_tiff,
    make_oversize_png,
    make_png,
)


def write_good_scans(folder: Path, count: int, prefix: str = "scan") -> dict[str, str]:
    """``count`` small PNGs whose ground truth the emulator's groundtruth backend returns."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i in range(count):
        text = f"برگه شماره {i} از بایگانی" if i % 2 else f"archive page number {i}"
        path = folder / f"{prefix}-{i:04d}.png"
        path.write_bytes(make_png(text))
        truth[str(path)] = text
    return truth


def write_bad_inputs(folder: Path) -> dict[str, str]:
    """The issue's bad inputs; returns {file name: what the table must say}."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corrupt.png").write_bytes(corrupt_png())
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_bytes("یادداشت، نه تصویر\n".encode())
    (folder / "oversize.png").write_bytes(make_oversize_png(2_500_000))
    (folder / "multi.tiff").write_bytes(make_multipage_tiff(["page one", "page two", "page three"]))
    with open(os.path.join(os.fsencode(folder), b"scan-\xff\xfe.png"), "wb") as handle:
        handle.write(make_png("name is not utf-8"))
    return {
        "corrupt.png": "invalid:corrupt_image",
        "empty.png": "invalid:empty_file",
        "notes.txt": "invalid:unsupported_type",
        "oversize.png": "processed",
        "multi.tiff": "processed x3",
        "scan-\\xff\\xfe.png": "processed",
    }
