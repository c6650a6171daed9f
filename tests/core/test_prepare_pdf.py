"""prepare_document: validation codes, page selection, splitting past 150 pages / 8 MB, auto engine.

Every part is read back with pypdf: it must be a valid PDF within the API's limits, and its
page i must be the original page its page map names (each page's text says which it is).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import fsspec
import pypdf
import pytest
from core_pdfs import damaged_pdf, document, encrypted, image_pdf, merged, page_text, page_texts, text_pdf
from PIL import Image

from airflow_provider_delix.api.models import MAX_PDF_BYTES, MAX_PDF_PAGES
from airflow_provider_delix.core.inputs import InputRef
from airflow_provider_delix.core.options import RunOptions
from airflow_provider_delix.core.pdf_split import MAX_REOPENS, MAX_UNWRITABLE
from airflow_provider_delix.core.prepare_pdf import (
    PreparedDocument,
    PreparedPart,
    count_pdf_pages,
    prepare_document,
)

DOCS = RunOptions(kind="documents")


def prepared(tmp_path: Path, data: bytes, options: RunOptions = DOCS, **kwargs: object) -> PreparedDocument:
    path = tmp_path / "input.pdf"
    path.write_bytes(data)
    ref = InputRef(source=str(path), fs=fsspec.filesystem("file"), path=str(path))
    doc = prepare_document(ref, options, **kwargs)  # type: ignore[arg-type]
    assert doc.sha256 == hashlib.sha256(data).hexdigest()
    return doc


def invalid(doc: PreparedDocument) -> list[tuple[int, str | None]]:
    return [(p.page_number, p.error) for p in doc.pages if p.error is not None]


def reassembled(parts: Sequence[PreparedPart], name: str) -> list[int]:
    """Check every part against the API's limits and its page map; the original page numbers."""
    numbers: list[int] = []
    for part in parts:
        assert len(part.data) <= MAX_PDF_BYTES and len(part.page_map) <= MAX_PDF_PAGES
        reader = pypdf.PdfReader(io.BytesIO(part.data))
        assert not reader.is_encrypted
        if part.selection is None:
            assert [n for n, _ in part.page_map] == list(range(1, len(reader.pages) + 1))
        texts = page_texts(part.data)
        for in_part, original in part.page_map:
            assert texts[in_part - 1] == page_text(name, original), (part.filename, in_part, original)
            numbers.append(original)
    return numbers


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("data", "reason", "says"),
    [
        (b"", "empty_file", "0 bytes"),
        (b"these are my notes, not a PDF\n", "not_a_pdf", "text/plain"),
        (b"PK\x03\x04 a zip archive", "not_a_pdf", "application/zip"),
        (b"%PDF-1.4\n" + bytes(range(256)) * 40, "corrupt_pdf", "cannot be read"),
        (text_pdf([]), "corrupt_pdf", "no pages"),
    ],
    ids=["empty", "text", "zip", "damaged", "no-pages"],
)
def test_documents_that_cannot_be_sent_get_one_invalid_row(
    tmp_path: Path, data: bytes, reason: str, says: str
) -> None:
    doc = prepared(tmp_path, data)
    assert doc.parts == () and invalid(doc) == [(1, reason)]
    (page,) = doc.pages
    assert page.data is None and says in (page.message or "") and "Traceback" not in (page.message or "")


def test_an_image_given_as_a_document_says_which_operator_to_use(tmp_path: Path) -> None:
    sink = io.BytesIO()
    Image.new("L", (20, 20), 255).save(sink, "PNG")
    doc = prepared(tmp_path, sink.getvalue())
    assert invalid(doc) == [(1, "not_a_pdf")] and "ImageExtractionOperator" in (doc.pages[0].message or "")


def test_an_encrypted_document_gets_a_row_per_page_counted_from_its_page_tree(tmp_path: Path) -> None:
    data = encrypted(document("secret", 3))
    assert count_pdf_pages(data) == 3  # pypdf cannot walk the tree without the password
    doc = prepared(tmp_path, data)
    assert doc.parts == ()
    assert invalid(doc) == [(1, "encrypted_pdf"), (2, "encrypted_pdf"), (3, "encrypted_pdf")]
    assert all("password" in (p.message or "") for p in doc.pages)


def test_an_encrypted_document_honours_the_page_selection(tmp_path: Path) -> None:
    # pages= applies to every document: an encrypted one must not report pages nobody asked for.
    doc = prepared(tmp_path, encrypted(document("secret", 3)), RunOptions(kind="documents", pages="2-4"))
    assert doc.parts == ()
    assert sorted(invalid(doc)) == [(2, "encrypted_pdf"), (3, "encrypted_pdf"), (4, "page_not_in_document")]


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-128", "AES-256"])
def test_a_document_with_an_empty_user_password_is_decrypted_and_split(
    tmp_path: Path, algorithm: str
) -> None:
    doc = prepared(tmp_path, encrypted(document("open", 4), user_password="", algorithm=algorithm))
    assert invalid(doc) == []
    assert reassembled(doc.parts, "open") == [1, 2, 3, 4]  # written out decrypted: Delix can read it
    assert {p.normalization for p in doc.parts} == {"split, decrypted"}


def test_a_selection_past_the_end_names_the_missing_pages(tmp_path: Path) -> None:
    data = document("five", 5)
    doc = prepared(tmp_path, data, RunOptions(kind="documents", pages="4-7"))
    assert invalid(doc) == [(6, "page_not_in_document"), (7, "page_not_in_document")]
    assert "5 page(s)" in (doc.pages[0].message or "")
    (part,) = doc.parts
    assert part.data == data and part.selection == "4-5" and part.page_map == ((4, 4), (5, 5))
    assert part.engine == "danlin" and part.normalization is None


def test_a_document_that_fits_is_sent_as_it_is(tmp_path: Path) -> None:
    data = document("twelve", 12)
    (whole,) = prepared(tmp_path, data).parts
    assert whole.data == data and whole.selection is None and whole.filename.endswith(".pdf")
    assert reassembled([whole], "twelve") == list(range(1, 13))
    (some,) = prepared(tmp_path, data, RunOptions(kind="documents", pages="1,3-4,12")).parts
    assert some.data == data and some.selection == "1,3,4,12"  # the API's list form, never a mix
    assert some.page_map == ((1, 1), (3, 3), (4, 4), (12, 12))


def test_resumed_pages_are_skipped_before_anything_is_written(tmp_path: Path) -> None:
    data = document("twelve", 12)
    sha = hashlib.sha256(data).hexdigest()
    done = {(sha, n) for n in (1, 2, 3, 7)}
    doc = prepared(tmp_path, data, skip=lambda s, _source, n: (s, n) in done)
    assert sorted(p.page_number for p in doc.pages if p.error is None and p.data is None) == [1, 2, 3, 7]
    (part,) = doc.parts
    assert part.selection == "4,5,6,8,9,10,11,12" and [o for _, o in part.page_map] == [
        4,
        5,
        6,
        8,
        9,
        10,
        11,
        12,
    ]


# ---------------------------------------------------------------------- splitting


def test_a_document_over_150_pages_is_split_into_parts_that_reassemble_it(tmp_path: Path) -> None:
    doc = prepared(tmp_path, document("long", 160))
    assert invalid(doc) == [] and len(doc.parts) == 2
    assert [len(p.page_map) for p in doc.parts] == [150, 10]
    assert reassembled(doc.parts, "long") == list(range(1, 161))
    assert all(p.selection is None and p.normalization == "split" for p in doc.parts)
    assert doc.parts[1].page_map[0] == (1, 151)


def test_a_resumed_long_document_splits_only_the_pages_still_to_do(tmp_path: Path) -> None:
    data = document("long", 160)
    doc = prepared(tmp_path, data, skip=lambda _sha, _source, n: n <= 100)
    (part,) = doc.parts
    assert reassembled(doc.parts, "long") == list(range(101, 161))
    assert len(pypdf.PdfReader(io.BytesIO(part.data)).pages) == 60


def test_a_document_over_8_mb_is_split_even_with_few_pages(tmp_path: Path) -> None:
    data = document("big", 3, pad=8_100_000)  # bytes no page uses: the parts are small
    assert len(data) > MAX_PDF_BYTES
    doc = prepared(tmp_path, data)
    assert invalid(doc) == [] and len(doc.parts) >= 2
    assert reassembled(doc.parts, "big") == [1, 2, 3]


def test_heavy_pages_are_split_by_bytes_halving_a_part_that_is_still_too_big(tmp_path: Path) -> None:
    # 10 light pages and 3 of 3 MB: the average suggests parts of 10 pages, but the last 3 pages
    # together are 9 MB and must be halved.
    names = [page_text("heavy", n) for n in range(1, 14)]
    data = text_pdf(names, page_pad=[0] * 10 + [3_000_000] * 3)
    doc = prepared(tmp_path, data)
    assert invalid(doc) == []
    assert reassembled(doc.parts, "heavy") == list(range(1, 14))
    assert [[o for _, o in p.page_map] for p in doc.parts] == [list(range(1, 11)), [11], [12, 13]]


def test_a_page_over_8_mb_on_its_own_is_too_large(tmp_path: Path) -> None:
    data = text_pdf([page_text("huge", 1), page_text("huge", 2)], page_pad=[0, 8_100_000])
    doc = prepared(tmp_path, data)
    assert invalid(doc) == [(2, "too_large")]
    assert reassembled(doc.parts, "huge") == [1]


def test_parts_fit_a_storage_budget_smaller_than_8_mb(tmp_path: Path) -> None:
    """A task that shares the account with a small ``max_stored_bytes`` must still send every
    page: parts are cut to the budget, and only a page over it on its own is left, as
    ``over_budget`` (a setting: the next run looks again)."""
    names = [page_text("budget", n) for n in range(1, 11)]
    data = text_pdf(names, page_pad=[500_000] * 9 + [3_200_000])  # about 7.7 MB: fits Delix whole
    doc = prepared(tmp_path, data, replace(DOCS, max_stored_bytes=3_000_000))
    assert [(n, e) for n, e in invalid(doc)] == [(10, "over_budget")]
    (message,) = [p.message for p in doc.pages if p.error]
    assert message is not None and "max_stored_bytes" in message
    assert all(len(p.data) <= 3_000_000 for p in doc.parts) and len(doc.parts) >= 2
    assert reassembled(doc.parts, "budget") == list(range(1, 10))
    whole = prepared(tmp_path, data)  # the default budget: one file, as it came
    assert invalid(whole) == [] and [p.data for p in whole.parts] == [data]


# ---------------------------------------------------------------------- engine="auto"

AUTO = RunOptions(kind="documents", engine="auto")


def test_auto_probes_a_text_layer_pdf(tmp_path: Path) -> None:
    data = document("typed", 4)
    (part,) = prepared(tmp_path, data, AUTO).parts
    assert (part.engine, part.selection, part.data) == ("probe", None, data)


def test_auto_sends_an_image_only_pdf_to_ocr(tmp_path: Path) -> None:
    data = image_pdf(3)
    assert page_texts(data) == ["", "", ""]
    (part,) = prepared(tmp_path, data, AUTO).parts
    assert (part.engine, part.selection, part.data) == ("danlin", None, data)
    assert [o for _, o in part.page_map] == [1, 2, 3]


def test_auto_splits_a_mixed_document_by_engine_on_the_same_bytes(tmp_path: Path) -> None:
    # pages 1-2 typed, 3-4 scans, 5 a page whose only text is a page number (noise: a scan)
    data = merged(document("mixed", 2), image_pdf(2), text_pdf(["p. 5"]))
    doc = prepared(tmp_path, data, AUTO)
    by_engine = {p.engine: p for p in doc.parts}
    assert set(by_engine) == {"probe", "danlin"} and all(p.data == data for p in doc.parts)
    assert by_engine["probe"].selection == "1-2" and by_engine["danlin"].selection == "3-5"
    assert [o for _, o in by_engine["danlin"].page_map] == [3, 4, 5]


def test_auto_with_a_long_mixed_document_splits_each_engine_apart(tmp_path: Path) -> None:
    data = merged(document("longmix", 152), image_pdf(2))
    doc = prepared(tmp_path, data, AUTO)
    probe = [p for p in doc.parts if p.engine == "probe"]
    (danlin,) = [p for p in doc.parts if p.engine == "danlin"]
    assert reassembled(probe, "longmix") == list(range(1, 153))
    assert [o for _, o in danlin.page_map] == [153, 154]
    assert len(pypdf.PdfReader(io.BytesIO(danlin.data)).pages) == 2


def break_add_page(
    monkeypatch: pytest.MonkeyPatch, error: Exception, pages: set[str] | None = None
) -> list[int]:
    """``PdfWriter.add_page`` raises a fresh copy of ``error`` for pages whose text is in ``pages``
    (every page when None) and copies the others; returns a one-item counter of its calls."""
    calls = [0]
    original = pypdf.PdfWriter.add_page

    def add_page(self: pypdf.PdfWriter, page: pypdf.PageObject, *args: object, **kwargs: object) -> object:
        calls[0] += 1
        if pages is None or page.extract_text().strip() in pages:
            raise type(error)(*error.args)
        return original(self, page, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pypdf.PdfWriter, "add_page", add_page)
    return calls


# ---------------------------------------------------------------------- damaged pages, decryption


def test_a_page_that_cannot_be_written_into_a_part_costs_only_its_own_row(tmp_path: Path) -> None:
    """A real file: page 7 uses an object pypdf reads but cannot copy. Its row says why (the
    recursion, not the "loop" pypdf reports on a second try), and the 159 other pages go in two
    parts, as many as without the damage."""
    doc = prepared(tmp_path, damaged_pdf(160, damaged=7))
    assert invalid(doc) == [(7, "corrupt_pdf")]
    message = next(p.message for p in doc.pages if p.error) or ""
    assert message.startswith("page 7 cannot be written into a part: RecursionError"), message
    assert [[o for _, o in p.page_map] for p in doc.parts] == [
        [*range(1, 7), *range(8, 152)],
        list(range(152, 161)),
    ]
    for part in doc.parts:
        assert len(pypdf.PdfReader(io.BytesIO(part.data)).pages) == len(part.page_map)


def test_a_pdf_whose_pages_all_fail_stops_trying_after_a_hundred(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = break_add_page(monkeypatch, ValueError("broken object"))
    doc = prepared(tmp_path, document("ruin", 300))
    assert doc.parts == () and invalid(doc) == [(n, "corrupt_pdf") for n in range(1, 301)]
    messages = [p.message or "" for p in doc.pages]
    assert all("ValueError: broken object" in m for m in messages)
    assert sum(m.startswith("page ") for m in messages) >= MAX_UNWRITABLE
    assert sum(m.startswith("not tried alone") for m in messages) >= 150  # the second 150 at least
    # Halving down to 100 single pages (about 2 failed writes per page), the first MAX_REOPENS
    # of them tried once more on a fresh opening, then each group still queued once, whole.
    assert calls[0] <= 2 * MAX_UNWRITABLE + MAX_REOPENS + 20, "every page was tried, page by page"


def test_after_the_limit_the_groups_left_are_still_tried_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten damaged pages, a limit of three: the pages after the damage are still sent."""
    monkeypatch.setattr("airflow_provider_delix.core.pdf_split.MAX_UNWRITABLE", 3)
    break_add_page(monkeypatch, ValueError("broken object"), {page_text("late", n) for n in range(1, 11)})
    doc = prepared(tmp_path, document("late", 400))
    refused = [n for n, _ in invalid(doc)]
    assert refused[:3] == [1, 2, 3] and set(range(1, 11)) <= set(refused)
    assert set(range(151, 401)) <= set(reassembled(doc.parts, "late")), "good pages were not sent"
    assert sorted(refused + reassembled(doc.parts, "late")) == list(range(1, 401))


def test_a_page_whose_codec_is_not_installed_costs_only_its_own_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unencrypted PDF whose page 7 uses a Brotli stream, without the brotli package."""
    from pypdf.errors import DependencyError

    missing = DependencyError("brotli is required to decode BrotliDecode streams")
    break_add_page(monkeypatch, missing, {page_text("codec", 7)})
    doc = prepared(tmp_path, document("codec", 160))
    assert invalid(doc) == [(7, "unsupported_codec")]
    assert "brotli" in (doc.pages[0].message or "")
    assert reassembled(doc.parts, "codec") == [n for n in range(1, 161) if n != 7]


def test_a_document_that_cannot_be_decrypted_here_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the cryptography package pypdf cannot decrypt AES: a row per page that says so."""
    from pypdf.errors import DependencyError

    def decrypt(_self: object, _password: str) -> object:
        raise DependencyError("cryptography>=3.1 is required for AES algorithm")

    monkeypatch.setattr(pypdf.PdfReader, "decrypt", decrypt)
    doc = prepared(tmp_path, encrypted(document("aes", 2), user_password="", algorithm="AES-256"))
    assert doc.parts == () and invalid(doc) == [(1, "encrypted_pdf"), (2, "encrypted_pdf")]
    assert all("cryptography" in (p.message or "") for p in doc.pages)


def test_streams_that_cannot_be_decrypted_here_stop_the_split_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AES-128 opens without the cryptography package but its streams do not: no halving."""
    from pypdf.errors import DependencyError

    calls = break_add_page(monkeypatch, DependencyError("cryptography>=3.1 is required for AES algorithm"))
    monkeypatch.setattr("airflow_provider_delix.core.pdf_split._crypto_installed", lambda: False)
    doc = prepared(tmp_path, encrypted(document("aes", 160), user_password="", algorithm="AES-128"))
    assert doc.parts == () and invalid(doc) == [(n, "encrypted_pdf") for n in range(1, 161)]
    assert calls[0] == 1 and "cryptography" in (doc.pages[0].message or "")


def test_a_page_count_past_belief_in_a_locked_pdf_gives_one_row(tmp_path: Path) -> None:
    data = encrypted(document("locked", 2)).replace(b"/Count 2", b"/Count 2000000000")
    doc = prepared(tmp_path, data)
    assert invalid(doc) == [(1, "encrypted_pdf")]


def test_a_page_tree_behind_a_missing_codec_gives_a_row_not_an_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pypdf raises DependencyError (not one of its PdfReadErrors) when the page tree itself is
    in an object stream compressed with a codec whose package is missing."""
    from pypdf.errors import DependencyError

    def pages(_self: object) -> object:
        raise DependencyError("brotli is required to decode BrotliDecode streams")

    monkeypatch.setattr(pypdf.PdfReader, "pages", property(pages))
    doc = prepared(tmp_path, document("tree", 3))
    assert doc.parts == () and invalid(doc) == [(1, "unsupported_codec")]
    assert "brotli" in (doc.pages[0].message or "")


def _miscounted(data: bytes, count: int) -> bytes:
    """``data`` with its page tree's /Count set to ``count``: pypdf still finds the real pages by
    walking the tree, a renderer that believes /Count (PDFium) sees ``count``."""
    from pypdf.generic import NameObject, NumberObject

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    writer.root_object["/Pages"][NameObject("/Count")] = NumberObject(count)
    sink = io.BytesIO()
    writer.write(sink)
    return sink.getvalue()


@pytest.mark.parametrize("declared", [2, 5, 200])
def test_a_page_tree_that_miscounts_its_pages_is_rewritten_with_the_right_count(
    tmp_path: Path, declared: int
) -> None:
    # Sent as is, Delix would charge for pages we never listed (5), fail one we did (2), or
    # refuse a 3-page file as over 150 pages (200).
    data = _miscounted(document("odd", 3), declared)
    assert len(pypdf.PdfReader(io.BytesIO(data)).pages) == 3
    doc = prepared(tmp_path, data)
    assert invalid(doc) == []
    assert reassembled(doc.parts, "odd") == [1, 2, 3]
    for part in doc.parts:
        assert part.data != data and part.normalization == "split, page count repaired"
        assert pypdf.PdfReader(io.BytesIO(part.data)).root_object["/Pages"]["/Count"] == len(part.page_map)


def _nested(data: bytes, first_count: int | None = None) -> bytes:
    """``data`` with its pages under two intermediate /Pages nodes (first page / the others);
    ``first_count`` overrides the first node's /Count, the root's stays right."""
    from pypdf.generic import ArrayObject, DictionaryObject, NameObject, NumberObject

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    root = writer.root_object["/Pages"]
    kids = list(root["/Kids"])
    new_kids = ArrayObject()
    for n, group in enumerate((kids[:1], kids[1:])):
        count = first_count if n == 0 and first_count is not None else len(group)
        node = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Pages"),
                NameObject("/Kids"): ArrayObject(group),
                NameObject("/Count"): NumberObject(count),
                NameObject("/Parent"): root.indirect_reference,
            }
        )
        ref = writer._add_object(node)
        for kid in group:
            kid.get_object()[NameObject("/Parent")] = ref
        new_kids.append(ref)
    root[NameObject("/Kids")] = new_kids
    sink = io.BytesIO()
    writer.write(sink)
    return sink.getvalue()


def test_a_nested_page_tree_is_checked_node_by_node(tmp_path: Path) -> None:
    right = _nested(document("a", 3))
    assert len(pypdf.PdfReader(io.BytesIO(right)).pages) == 3
    (part,) = prepared(tmp_path, right).parts
    assert part.data == right and part.normalization is None, "a tree that counts right is sent as is"
    wrong = _nested(document("a", 3), first_count=2)  # a renderer would look for page 2 in node 1
    doc = prepared(tmp_path, wrong)
    assert reassembled(doc.parts, "a") == [1, 2, 3]
    assert {p.normalization for p in doc.parts} == {"split, page count repaired"}
