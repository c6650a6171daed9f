"""An upload refused with GENERAL_EXCEPTION: its files are uploaded one at a time, never a run failure.

``GENERAL_EXCEPTION`` is Delix's "unexpected server failure": the request was refused and
nothing stored. The hook's retry policy repeats an upload refused with it; once it gives up
(the fake plays that moment: it raises what the hook finally raises), a multi-file upload is
split file by file, and a file refused alone gets a ``failed`` row that the next run sends again.
"""

from __future__ import annotations

from typing import Any

from fakes import FakeDelix, images, source
from test_pipeline import assert_clean, run, table

from airflow_provider_delix.api.errors import DelixApiError, DelixValidationError
from airflow_provider_delix.api.models import ErrorCode


class _UploadRefused(FakeDelix):
    """Refuses every upload naming ``GENEXC`` content while ``failing``, and, ``all_multi``,
    every multi-file upload (Delix failing on larger requests)."""

    def __init__(self, *, all_multi: bool = False) -> None:
        super().__init__()
        self.failing, self.all_multi, self.refused = True, all_multi, 0

    def upload_files(self, files: Any) -> Any:
        datas = [bytes(data) for _, data in files]
        bad = any(d.startswith(b"GENEXC") for d in datas) or (self.all_multi and len(datas) > 1)
        if self.failing and bad:
            with self.lock:
                self.refused += 1
            raise DelixApiError(
                "Delix rejected the upload with GENERAL_EXCEPTION", error=ErrorCode.GENERAL_EXCEPTION
            )
        return super().upload_files(files)


def test_a_refused_upload_goes_file_by_file_and_the_file_refused_alone_gets_a_row(out: str) -> None:
    fake = _UploadRefused()
    sources = [*images(4), source("flaky", b"GENEXC")]
    summary, error, _ = run(fake, out, sources, max_concurrency=7, max_failed_ratio=None)
    assert error is None and summary is not None, f"the run failed: {error!r}"
    assert summary.rows["processed"] == 4 and summary.rows["failed"] == 1
    rows = table(out).set_index("source")
    flaky = rows.loc["flaky"]
    assert flaky["status"] == "failed" and flaky["error"] == "GENERAL_EXCEPTION"
    assert flaky["credits_charged"] == 0 and "next run" in flaky["error_message"]
    assert fake.refused == 2, "the chunk's upload, then the flaky file alone"
    assert fake.calls["upload_files"] == 4, "the four others, one at a time"
    assert_clean(fake)

    fake.failing = False  # Delix recovered: the next run sends the refused file again
    again, error, _ = run(fake, out, sources, max_concurrency=7)
    assert error is None and again is not None
    assert again.rows["processed"] == 1 and again.pages_resumed == 4
    assert (table(out)["status"] == "processed").all() and len(table(out)) == 5


def test_files_refused_only_together_are_all_read(out: str) -> None:
    fake = _UploadRefused(all_multi=True)
    summary, error, _ = run(fake, out, images(5), max_concurrency=7)
    assert error is None and summary is not None and summary.rows["processed"] == 5
    assert_clean(fake)


class _UploadInvalid(FakeDelix):
    """Answers an upload naming ``BADMIME`` content with Laravel's validation 422 (no ErrorEnum),
    after ``lost`` sends of it lost their answer (and stored copies nobody can name)."""

    def __init__(self, *, lost: int = 0) -> None:
        super().__init__()
        self.lost = lost

    def upload_files(self, files: Any) -> Any:
        if any(bytes(d).startswith(b"BADMIME") for _, d in files):
            self._enter("upload_files")
            refused = DelixValidationError(
                "Delix rejected the upload as invalid (HTTP 422): file.0: must be a file of type png, jpg.",
                errors={"file.0": ["The file.0 must be a file of type: png, jpg, jpeg, pdf."]},
                status_code=422,
            )
            refused.lost_attempts = self.lost
            raise refused
        return super().upload_files(files)


def test_an_upload_refused_by_validation_goes_file_by_file_and_the_run_goes_on(out: str) -> None:
    fake = _UploadInvalid()
    summary, error, _ = run(fake, out, [source("bad", b"BADMIME"), *images(12)], max_failed_ratio=None)
    assert error is None and summary is not None, f"the run failed: {error!r}"
    rows = table(out).set_index("source")
    assert len(rows) == 13 and summary.rows["processed"] == 12
    bad = rows.loc["bad"]
    assert bad["status"] == "failed" and bad["error"] == "request_invalid"
    assert "must be a file of type" in bad["error_message"] and bad["credits_charged"] == 0
    assert_clean(fake)
    again, error, _ = run(fake, out, [source("bad", b"BADMIME"), *images(12)], max_failed_ratio=None)
    assert error is None and again is not None and fake.calls["upload_files"] >= 1
    assert sum(again.rows.values()) == 0, "a validation refusal is settled: not sent again"


def test_an_upload_refused_after_a_lost_send_is_left_when_no_sweep_can_find_its_copies(out: str) -> None:
    """Without the key registry's sweep, copies a lost send may have stored would stay on the
    account: the chunk is not uploaded file by file, it is left to the next try."""
    fake = _UploadInvalid(lost=1)
    summary, error, _ = run(fake, out, [source("bad", b"BADMIME")], max_failed_ratio=None)
    assert "left to the next try" in str(error)
    assert fake.calls["upload_files"] == 1, "an upload that lost a send was split without a sweep"
    assert summary is not None and sum(summary.rows.values()) == 0 and summary.pages_left == 1
