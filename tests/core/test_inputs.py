"""resolve_inputs / read_input: the accepted forms, ordering, skipping rules and odd names."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fsspec
import pytest

from airflow_provider_delix.core.inputs import (
    InputRef,
    SourceTooLargeError,
    display_path,
    read_input,
    resolve_inputs,
)


def _tree(root: Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())


def _sources(images: Any, **kwargs: Any) -> list[str]:
    return [ref.source for ref in resolve_inputs(images, **kwargs)]


@pytest.fixture
def memfs() -> Any:
    """A memory filesystem under a unique root, so tests never see each other's files."""
    fs = fsspec.filesystem("memory")
    root = f"/t{uuid.uuid4().hex}"
    yield fs, root
    fs.rm(root, recursive=True)


TRICKY = ["a.png", "a-1.png", "a/x.png", "a/b/y.png", "b.jpg", "z.tif"]


def test_folder_is_recursive_and_in_plain_path_order(tmp_path: Path) -> None:
    _tree(tmp_path, [*TRICKY, ".hidden.png", ".git/c.png", "_state/d.png", "a/_SUCCESS"])
    sources = _sources(str(tmp_path))
    expected = sorted(str(tmp_path / name) for name in TRICKY)
    assert sources == expected  # hidden files, _-prefixed state and directories are skipped


def test_order_is_deterministic_across_calls(tmp_path: Path) -> None:
    _tree(tmp_path, [f"d{i % 3}/p{i:03d}.png" for i in range(30)])
    assert _sources(str(tmp_path)) == _sources(str(tmp_path))


def test_globs_recursive_and_flat(tmp_path: Path) -> None:
    _tree(tmp_path, [*TRICKY, "a/_tmp/q.png", "a/.cache/r.png"])
    assert _sources(f"{tmp_path}/**/*.png") == [
        str(tmp_path / n) for n in ["a-1.png", "a.png", "a/b/y.png", "a/x.png"]
    ]
    assert _sources(f"{tmp_path}/*.png") == [str(tmp_path / "a-1.png"), str(tmp_path / "a.png")]
    assert _sources(f"{tmp_path}/*/*.png") == [str(tmp_path / "a/x.png")]
    assert _sources(f"{tmp_path}/**/*.webp") == []


def test_relative_glob(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path, ["scans/one/p1.png", "scans/p0.png", "other/p2.png"])
    monkeypatch.chdir(tmp_path)
    assert _sources("scans/**/*.png") == [str(tmp_path / "scans/one/p1.png"), str(tmp_path / "scans/p0.png")]


def test_list_is_sorted_and_deduplicated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path, ["b.png", "a.png", "dir/c.png"])
    monkeypatch.chdir(tmp_path)
    refs = list(resolve_inputs(["b.png", "./b.png", "dir", "a.png", str(tmp_path / "dir/c.png")]))
    assert [r.source for r in refs] == ["./b.png", str(tmp_path / "dir/c.png"), "a.png"]
    assert [read_input(r) for r in refs] == [b"b.png", b"dir/c.png", b"a.png"]


def test_missing_explicit_path_is_kept_but_empty_glob_is_not(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.png")
    (tmp_path / "empty-dir").mkdir()
    refs = list(resolve_inputs([missing, f"{tmp_path}/*.png", str(tmp_path / "empty-dir")]))
    assert [r.source for r in refs] == [missing]
    with pytest.raises(FileNotFoundError):
        read_input(refs[0])


def test_literal_brackets_in_an_existing_name_are_not_a_glob(tmp_path: Path) -> None:
    _tree(tmp_path, ["scan[1].png", "scan1.png"])
    assert _sources(str(tmp_path / "scan[1].png")) == [str(tmp_path / "scan[1].png")]


def test_pathlike_and_file_url(tmp_path: Path) -> None:
    _tree(tmp_path, ["x/p.png"])
    assert _sources(tmp_path / "x") == [str(tmp_path / "x/p.png")]
    assert _sources(f"file://{tmp_path}/x") == [f"file://{tmp_path}/x/p.png"]


def test_memory_prefix_and_glob(memfs: Any) -> None:
    fs, root = memfs
    for name in ["scans/b.jpg", "scans/a.png", "scans/sub/c.png", "scans/_state/s.json", "other/d.png"]:
        fs.pipe(f"{root}/{name}", name.encode())
    assert _sources(f"memory://{root}/scans") == [
        f"memory://{root}/scans/a.png",
        f"memory://{root}/scans/b.jpg",
        f"memory://{root}/scans/sub/c.png",
    ]
    assert _sources(f"memory://{root}/scans/*.png") == [f"memory://{root}/scans/a.png"]
    assert _sources(f"memory://{root}/nothing/**/*.png") == []
    ref = next(iter(resolve_inputs(f"memory://{root}/scans/sub/")))
    assert read_input(ref) == b"scans/sub/c.png"


class _CountingFs:
    """Wraps a filesystem to count directory listings (to prove the walk is lazy)."""

    def __init__(self, fs: Any) -> None:
        self._fs = fs
        self.listed: list[str] = []

    def ls(self, path: str, detail: bool = True) -> Any:
        self.listed.append(path)
        return self._fs.ls(path, detail=detail)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fs, name)


class _FakeObjectStoragePath:
    """Duck-types Airflow's ObjectStoragePath: ``.fs``, ``.path`` and a URL as ``str()``."""

    def __init__(self, fs: Any, path: str) -> None:
        self.fs = fs
        self.path = path

    def __str__(self) -> str:
        return f"memory://{self.path}"


def test_object_storage_path_uses_its_own_fs_and_is_lazy(memfs: Any) -> None:
    fs, root = memfs
    for folder in ("a", "b", "c"):
        fs.pipe(f"{root}/{folder}/p.png", b"x")
    counting = _CountingFs(fs)
    refs = resolve_inputs(_FakeObjectStoragePath(counting, root))
    first = next(refs)
    assert first.source == f"memory://{root}/a/p.png"
    assert first.fs is counting
    assert counting.listed == [root, f"{root}/a"]  # b and c not listed yet
    assert [r.path for r in refs] == [f"{root}/b/p.png", f"{root}/c/p.png"]


def test_non_utf8_file_name_from_folder_and_as_bytes(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/scan-\xff.png"
    with open(raw, "wb") as handle:
        handle.write(b"payload")
    (listed,) = resolve_inputs(str(tmp_path))
    (given,) = resolve_inputs(raw)
    for ref in (listed, given):
        assert ref.source == f"{tmp_path}/scan-\\xff.png"
        ref.source.encode("utf-8")  # valid UTF-8, escapes instead of surrogates
        assert read_input(ref) == b"payload"


def test_display_path_escapes_only_what_is_not_utf8() -> None:
    assert display_path("اسکن/صفحه-۱.png") == "اسکن/صفحه-۱.png"
    assert display_path(b"scan-\xff.png") == "scan-\\xff.png"
    assert display_path("lone-\ud800") == "lone-\\ud800"


def test_storage_options_reach_the_filesystem(tmp_path: Path) -> None:
    _tree(tmp_path, ["p.png"])
    (ref,) = resolve_inputs(str(tmp_path / "p.png"), storage_options={"auto_mkdir": True})
    assert ref.fs.auto_mkdir is True


def test_read_input_refuses_huge_sources(tmp_path: Path) -> None:
    _tree(tmp_path, ["big.png"])
    ref = InputRef(source="big.png", fs=fsspec.filesystem("file"), path=str(tmp_path / "big.png"))
    assert read_input(ref, max_bytes=7) == b"big.png"
    with pytest.raises(SourceTooLargeError):
        read_input(ref, max_bytes=6)


def test_bad_argument_types() -> None:
    with pytest.raises(TypeError):
        list(resolve_inputs(42))
    with pytest.raises(TypeError):
        list(resolve_inputs([3.5]))


def test_mixed_archive_each_job_takes_its_own_listed_files(tmp_path: Path) -> None:
    from airflow_provider_delix.core.jobs import DocumentJob, ImageJob
    from airflow_provider_delix.core.options import RunOptions

    for name in ("a.png", "b.PDF", "c.tif", "d.pdf", "e.jpg.pdf", "f"):
        (tmp_path / name).write_bytes(b"x")
    images = ImageJob(RunOptions())
    documents = DocumentJob(RunOptions(kind="documents"))

    def names(items: Any, job: Any) -> list[str]:
        return [os.path.basename(r.path) for r in resolve_inputs(items, keep=job.takes)]

    took_images, took_documents = names(str(tmp_path), images), names(str(tmp_path), documents)
    assert took_images == ["a.png", "c.tif", "f"]
    assert took_documents == ["b.PDF", "d.pdf", "e.jpg.pdf"]
    assert sorted(took_images + took_documents) == sorted(os.listdir(tmp_path)), "every file, once"
    assert names(f"{tmp_path}/*", documents) == took_documents  # globs are filtered too
    # A file named explicitly is always taken: the user asked for it (it gets a clear row).
    assert names([str(tmp_path / "d.pdf"), str(tmp_path)], images) == ["a.png", "c.tif", "f", "d.pdf"]


def test_read_input_reads_local_files_whole_at_any_size(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    ref = InputRef(source="scan.png", fs=fsspec.filesystem("file"), path=str(path))
    for size in (0, 1, 5000, 3 * 1024 * 1024 + 7):  # empty, tiny, several read steps
        data = os.urandom(size)
        path.write_bytes(data)
        assert read_input(ref) == data


def test_a_local_file_larger_than_its_size_at_open_is_read_to_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A scanner still writing the file: the size taken at open is only where reading starts.
    path = tmp_path / "growing.png"
    data = os.urandom(2 * 1024 * 1024 + 3)
    path.write_bytes(data)
    ref = InputRef(source="growing.png", fs=fsspec.filesystem("file"), path=str(path))
    monkeypatch.setattr(os, "fstat", lambda _fd: SimpleNamespace(st_size=10))
    assert read_input(ref) == data
    with pytest.raises(SourceTooLargeError):
        read_input(ref, max_bytes=len(data) - 1)
