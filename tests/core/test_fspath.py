"""Locations that carry their own filesystem (``FsPath``, ObjectStoragePath-like): the core side.

Airflow builds the filesystem from a connection; the core must then use that filesystem for
listing inputs and for the whole table (parts, journals, leases), and show no connection id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import fsspec
import pytest
from fakes import FakeDelix

from airflow_provider_delix.core.fspath import FsPath, location_text, open_location
from airflow_provider_delix.core.inputs import resolve_inputs
from airflow_provider_delix.core.options import RunOptions
from airflow_provider_delix.core.run import run_extraction
from airflow_provider_delix.core.store import OutputStore
from airflow_provider_delix.core.table import PageRow, read_table
from airflow_provider_delix.emulator.scans import make_png


@dataclass
class FakeObjectStoragePath:
    """What the core relies on of Airflow's ObjectStoragePath: ``.fs``, ``.path`` and ``str()``."""

    fs: Any
    path: str
    conn_id: str

    def __str__(self) -> str:
        return f"memory://{self.conn_id}@{self.path.lstrip('/')}"


@pytest.fixture
def root() -> str:
    return f"/fspath-{uuid.uuid4().hex}"


def test_inputs_are_listed_on_the_carried_filesystem_and_shown_without_the_conn_id(root: str) -> None:
    fs = fsspec.filesystem("memory")
    for name in ("b.png", "a.png", "sub/c.png"):
        fs.pipe_file(f"{root}/scans/{name}", b"x")
    listed = [ref.source for ref in resolve_inputs(FakeObjectStoragePath(fs, f"{root}/scans", "my_conn"))]
    assert listed == [f"memory://{root}/scans/{n}" for n in ("a.png", "b.png", "sub/c.png")]
    (one,) = resolve_inputs(FakeObjectStoragePath(fs, f"{root}/scans/a.png", "my_conn"))
    assert one.source == f"memory://{root.lstrip('/')}/scans/a.png" and one.fs is fs
    given = FsPath(fs=fs, path=f"{root}/scans/*.png", uri=f"memory://{root}/scans/*.png")
    assert [ref.path for ref in resolve_inputs([given])] == [f"{root}/scans/a.png", f"{root}/scans/b.png"]


def test_the_store_writes_and_resumes_through_the_carried_filesystem(root: str) -> None:
    fs = fsspec.filesystem("memory")
    output = FsPath(fs=fs, path=f"{root}/table", uri=f"memory://{root}/table")
    with OutputStore(output, run_tag="t") as store:
        store.append("c1", [PageRow("s3://b/a.png", "sha-a", 1, "processed", text="hi")])
    assert [p.rsplit("/", 1)[-1][:7] for p in fs.ls(f"{root}/table", detail=False)].count("part-t-") == 1
    table = read_table(output)
    assert list(table["text"]) == ["hi"]
    with OutputStore(output, run_tag="t2") as again:
        assert again.done_keys() == {("sha-a", 1)}


def test_location_text_hides_only_an_airflow_conn_id() -> None:
    fs = fsspec.filesystem("memory")
    assert location_text(FakeObjectStoragePath(fs, "/bucket/key", "aws_s3")) == "memory://bucket/key"
    assert location_text("sftp://me@host/data") == "sftp://me@host/data", "a plain string is as written"
    assert open_location(FsPath(fs=fs, path="/t/", uri="memory://t/")) == (fs, "/t")


def test_a_whole_run_reads_and_writes_only_through_the_carried_filesystems(root: str) -> None:
    scans_fs, tables_fs = fsspec.filesystem("memory"), fsspec.filesystem("memory")
    for i in range(3):
        scans_fs.pipe_file(f"{root}/in/scan-{i}.png", make_png(f"page {i}"))
    inputs = FsPath(fs=scans_fs, path=f"{root}/in", uri=f"s3://{root.lstrip('/')}/in/")
    output = FsPath(fs=tables_fs, path=f"{root}/out", uri=f"s3://{root.lstrip('/')}/out")
    # Options that would break any attempt to open the URIs themselves: nothing may use them.
    options = RunOptions(storage_options={"no_such_option": True})
    fake = FakeDelix()
    summary = run_extraction(inputs, output, fake, options, run_id="r1")
    assert summary.pages_total == 3
    table = read_table(output)
    assert sorted(table["source"]) == [f"memory://{root}/in/scan-{i}.png" for i in range(3)]
    calls = sum(fake.calls.values())
    run_extraction(inputs, output, fake, options, run_id="r2")
    assert sum(fake.calls.values()) == calls, "a re-run through the same filesystem sends nothing"
