"""Seeded random damage to valid scans and PDFs: preparation never raises, nothing is lost.

Real archives hold truncated downloads, flipped bytes and files cut and pasted together. Every
such input must end as rows that say what is wrong, or as upload-ready pages: never an
exception out of preparation (which would stop the run) and never a page counted twice or not
at all. The mutations are seeded, so a failure names a case that can be replayed.
"""

from __future__ import annotations

import io
import logging
import random
import warnings
from collections.abc import Iterator

import fsspec
import pytest
from core_pdfs import document
from PIL import Image

from airflow_provider_delix.core.inputs import InputRef
from airflow_provider_delix.core.options import RunOptions
from airflow_provider_delix.core.prepare import prepare_source
from airflow_provider_delix.core.prepare_pdf import prepare_document

pytestmark = pytest.mark.timeout(120)


def _images() -> list[bytes]:
    made = []
    for fmt, mode in (
        ("PNG", "L"),
        ("JPEG", "RGB"),
        ("TIFF", "L"),
        ("GIF", "P"),
        ("BMP", "RGB"),
        ("WEBP", "RGB"),
    ):
        buf = io.BytesIO()
        image = Image.new(mode, (300, 200), 128)
        if fmt == "TIFF":
            second = Image.new(mode, (300, 200), 50)
            image.save(buf, fmt, save_all=True, append_images=[second], compression="tiff_deflate")
        else:
            image.save(buf, fmt)
        made.append(buf.getvalue())
    return made


def _damaged(data: bytes, rng: random.Random, edits: int) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, edits)):
        pos = rng.randrange(len(b))
        roll = rng.random()
        if roll < 0.5:
            b[pos] = rng.randrange(256)
        elif roll < 0.75:
            del b[pos : pos + rng.randint(1, 150)]
        else:
            b[pos:pos] = rng.randbytes(rng.randint(1, 40))
    return bytes(b)


def _cases(bases: list[bytes], n: int, seed: int, edits: int) -> Iterator[tuple[int, InputRef]]:
    rng = random.Random(seed)
    fs = fsspec.filesystem("memory")
    for i in range(n):
        path = f"/damaged/{seed}/{i}"
        fs.pipe(path, _damaged(bases[i % len(bases)], rng, edits))
        yield i, InputRef(source=f"memory:/{path}", fs=fs, path=path)


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def test_damaged_images_become_rows_or_pages_never_exceptions() -> None:
    for i, ref in _cases(_images(), 300, seed=7, edits=8):
        source = prepare_source(ref)  # raising fails the test, naming the case below
        assert source.pages, f"case {i}: no page at all"
        for page in source.pages:
            assert (page.data is None) != (page.error is None), f"case {i}: page {page.page_number}"
            assert page.error is None or page.message, f"case {i}: an error without a message"


@pytest.mark.parametrize(("pages", "n"), [(6, 60), (160, 12)], ids=["fits", "split"])
def test_damaged_pdfs_account_for_every_page_exactly_once(pages: int, n: int) -> None:
    options = RunOptions(kind="documents", engine="auto")
    for i, ref in _cases([document("dmg", pages)], n, seed=pages, edits=20):
        doc = prepare_document(ref, options)
        sent = [original for part in doc.parts for _, original in part.page_map]
        rows = [p.page_number for p in doc.pages]
        assert all(p.error and p.message for p in doc.pages), f"case {i}: a row without a reason"
        assert len(set(sent)) == len(sent) and not set(sent) & set(rows), f"case {i}: a page twice"
        covered = sorted(sent + rows)
        assert covered == list(range(1, len(covered) + 1)), f"case {i}: pages {covered} are not 1..n"
