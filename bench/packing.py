"""Image packing (``packing="pdf"``) against the plain image path, on the same archive.

Part 1, throughput: ``--images`` distinct small JPEG scans (groundtruth text in a comment),
the emulator latencies of ``bench/throughput.py`` (upload 150 ms per request, extraction
400 ms + 100 ms per page, delete 50 ms per request). The plain run is bounded by the
account's 30 stored files (30 / (U + E + D) images/s). A pack is one stored file of up to
150 pages whose extraction Delix *queues*, so the packed run is bounded by how many queued
extracts Delix works on at once, which the API does not publish. The emulator's queue model:
``async_workers`` extracts at a time, each for 100 ms per page. The bench runs the packed
archive with a queue of 30 workers (every stored pack in work at once) and with the
emulator's default of 2, and checks for every run: each page charged once, the account empty
afterwards, and the texts of the packed run equal to the plain run's, image by image.

Part 2, fidelity with real OCR: the sample scans (``tests/data/scans``) through Tesseract,
plain and packed; prints how many images got the same text both ways (``--no-tesseract``
skips it).

    .venv/bin/python bench/packing.py [--images 3000] [--smoke] [--no-tesseract]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import LATENCIES, ROOT, bound_figures, run_forked, start_emulator, tempdir, use_connection

POLL = 0.25
SCANS = ROOT / "tests" / "data" / "scans"


def write_jpegs(folder: Path, count: int) -> None:
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    base = Image.new("L", (320, 120), 255)
    for i in range(count):
        im = base.copy()
        ImageDraw.Draw(im).text((8, 50), f"scan {i}", fill=0)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=80, comment=f"delix:text=scan number {i}".encode())
        (folder / f"scan-{i:05d}.jpg").write_bytes(buf.getvalue())


def texts(output: Path) -> dict[str, str]:
    import pandas as pd

    frame = pd.read_parquet(output)
    if frame.duplicated(["source", "page_number"]).any():
        raise SystemExit(f"{output}: an image got two rows")
    bad = frame[frame.status != "processed"]
    if len(bad):
        raise SystemExit(f"{output}: {len(bad)} rows not processed: {bad.error.value_counts().to_dict()}")
    return {Path(s).name: str(t) for s, t in zip(frame.source, frame.text, strict=True)}


def run(home: Path, job: dict[str, Any], pages: int, **emulator: Any) -> dict[str, Any]:
    with start_emulator(**emulator) as emu:
        use_connection(emu, home)
        (result,) = run_forked([job])
        stats = emu.stats()
    charges = stats["charges"]
    if len(charges) != pages or set(charges.values()) != {1}:
        raise SystemExit(f"expected {pages} pages charged once each, got {len(charges)} keys")
    if stats["files"]["count"]:
        raise SystemExit(f"{stats['files']['count']} files left on the account")
    return {**result, "peak": stats["files"]["max_count"], "charged": stats["credits"]["charged"]}


def throughput(home: Path, count: int) -> None:
    f = bound_figures()
    write_jpegs(home / "scans", count)
    base = {"images": str(home / "scans"), "poll_interval": POLL}
    plain = run(home, {**base, "output": str(home / "plain")}, count, **LATENCIES)
    plain_rate = count / plain["elapsed"]
    print(
        f"plain: {count} images in {plain['elapsed']:.1f}s = {plain_rate:.2f} images/s = "
        f"{plain_rate / f['bound']:.3f} x the bound 30/(U+E+D) = {f['bound']:.2f}; peak stored "
        f"{plain['peak']}; {plain['charged'] / count:.0f} credits/page"
    )
    print(f"RESULT packing plain images/s = {plain_rate:.2f}")
    expected = texts(home / "plain")
    for workers in (30, 2):
        out = home / f"packed-{workers}"
        r = run(
            home, {**base, "output": str(out), "packing": "pdf"}, count, **LATENCIES, async_workers=workers
        )
        rate = count / r["elapsed"]
        got = texts(out)
        same = sum(got.get(name) == text for name, text in expected.items())
        print(
            f"packed, emulator queue of {workers} worker(s): {count} images in {r['elapsed']:.1f}s = "
            f"{rate:.2f} images/s = {rate / plain_rate:.2f} x plain; {r['requests'].get('upload_files', 0)} "
            f"packs, peak stored {r['peak']}; {r['charged'] / count:.0f} credits/page; texts equal to "
            f"plain: {same}/{count}"
        )
        print(f"RESULT packing packed images/s (queue {workers}) = {rate:.2f}")
        if same != count:
            raise SystemExit("the packed run's texts differ from the plain run's")


def fidelity(home: Path) -> None:
    """The sample scans through real Tesseract, plain and packed, per language."""
    truth = json.loads((SCANS / "ground_truth.json").read_text(encoding="utf-8"))
    by_language: dict[str, list[str]] = {}
    for name in sorted(p.name for p in SCANS.glob("*.png")):
        by_language.setdefault(name.rsplit("_", 1)[1].split(".")[0], []).append(name)
    same = total = 0
    for language, names in by_language.items():
        folder = home / f"scans-{language}"
        folder.mkdir()
        for name in names:
            (folder / name).write_bytes((SCANS / name).read_bytes())
        results = {}
        for packing in ("none", "pdf"):
            out = home / f"tess-{language}-{packing}"
            job = {"images": str(folder), "output": str(out), "packing": packing, "language": language}
            with start_emulator(ocr="tesseract", async_workers=2) as emu:
                use_connection(emu, home)
                run_forked([{**job, "poll_interval": POLL}])
            results[packing] = texts(out)
        same += sum(results["pdf"][n] == results["none"][n] for n in names)
        total += len(names)
    print(
        f"sample scans with real Tesseract ({total} images, {len(truth)} with ground truth): packed text "
        f"equal to plain text for {same}/{total}"
    )
    print(f"RESULT packing tesseract texts equal = {same}/{total}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--smoke", action="store_true", help="tiny run: checks the bench works")
    parser.add_argument("--no-tesseract", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.images, args.no_tesseract = 40, True
    with tempdir("packing") as tmp:
        throughput(Path(tmp), args.images)
        if not args.no_tesseract:
            fidelity(Path(tmp))


if __name__ == "__main__":
    main()
