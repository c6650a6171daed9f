"""StateDir's local writes: atomic, their directory made on demand, nothing half-written left."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import fsspec
import pytest

from airflow_provider_delix.core.state_dir import StateDir


def _state(tmp_path: Path) -> StateDir:
    return StateDir(fsspec.filesystem("file"), str(tmp_path / "_delix_state"))


def test_a_write_makes_its_directory_and_again_after_it_was_removed(tmp_path: Path) -> None:
    state = _state(tmp_path)
    path = f"{state.root}/uploads/run-a/c1.json"
    state.write_bytes(path, b"one")
    assert state.read_bytes(path) == b"one"
    state.rmdir(f"{state.root}/uploads/run-a")  # another writer's cleanup removed it meanwhile
    state.write_bytes(path, b"two")
    assert state.read_bytes(path) == b"two"
    assert os.listdir(tmp_path / "_delix_state" / "uploads" / "run-a") == ["c1.json"]


def test_a_failed_write_keeps_the_old_content_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _state(tmp_path)
    path = f"{state.root}/extracts/run-a/c1-x1.json"
    state.write_bytes(path, b"intent")

    def full(_fd: int, _data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space left"):
        state.write_bytes(path, b"answered")
    monkeypatch.undo()
    assert state.read_bytes(path) == b"intent"
    assert os.listdir(tmp_path / "_delix_state" / "extracts" / "run-a") == ["c1-x1.json"]


def test_a_large_state_file_is_written_whole(tmp_path: Path) -> None:
    state = _state(tmp_path)
    data = os.urandom(5 * 1024 * 1024)  # os.write may take less than asked: the rest follows
    state.write_bytes(f"{state.root}/journal/run-a/c1.arrow", data)
    assert state.read_bytes(f"{state.root}/journal/run-a/c1.arrow") == data
