"""Extractions refused with a 422 that carries no ErrorEnum value: refusals, not run failures.

Delix's backend is Laravel: a refused request may answer ``{"message", "errors": {field: [...]}}``
(validation) or only a ``message``. Like an ErrorEnum refusal it applied nothing and cost
nothing, so a multi-file request is split file by file and a file refused alone gets a
``failed`` row that says why (never a traceback). ``errors.files.N.uuid`` is Laravel's answer
for a uuid it does not know: handled like a 404 (uploaded again once). ``errors.engine`` is
the task's settings: the run stops with the message.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fakes import FakeDelix, images, source, text_of
from test_pipeline import assert_clean, run, table

from airflow_provider_delix.api.errors import DelixValidationError


class _Invalid(FakeDelix):
    """Refuses extractions naming ``INVALID`` content with ``errors`` (``None``: only a message);
    ``first_only``: only the first such request (a uuid Delix no longer knows, then does)."""

    def __init__(self, errors: dict[str, list[str]] | None, *, first_only: bool = False) -> None:
        super().__init__()
        self.errors, self.first_only, self.refused = errors, first_only, 0

    def extract_images(self, file_uuids: Any, engine: Any, language: Any) -> Any:
        with self.lock:
            datas = [self.stored.get(u, b"") for u in file_uuids]
            refuse = any(d.startswith(b"INVALID") for d in datas) and not (self.first_only and self.refused)
            self.refused += refuse
        if refuse:
            errors = self.errors or {}
            detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()) or "no details"
            raise DelixValidationError(
                f"Delix rejected the extraction as invalid (HTTP 422): {detail}. Delix said: نامعتبر",
                errors=errors,
                status_code=422,
                api_message="نامعتبر",
            )
        return super().extract_images(file_uuids, engine, language)


@pytest.mark.parametrize("errors", [None, {"files.0.page": ["The page field is not allowed."]}])
def test_a_validation_refusal_is_split_and_the_file_alone_gets_a_failed_row(
    out: str, errors: dict[str, list[str]] | None
) -> None:
    fake = _Invalid(errors)
    sources = [*images(4), source("odd", b"INVALID")]
    summary, error, _ = run(fake, out, sources, max_concurrency=7, max_failed_ratio=None)
    assert error is None and summary is not None, f"the run failed: {error!r}"
    rows = table(out).set_index("source")
    assert summary.rows["processed"] == 4 and summary.rows["failed"] == 1
    odd = rows.loc["odd"]
    assert odd["status"] == "failed" and odd["error"] == "request_invalid" and odd["credits_charged"] == 0
    assert "نامعتبر" in odd["error_message"] and "Traceback" not in odd["error_message"]
    assert "files.0.page" in odd["error_message"] or errors is None
    assert rows.loc["img-00000.png", "text"] == text_of(b"img-0")
    # the chunk's request and the odd one alone were refused (not recorded); the others alone
    assert fake.refused == 2 and [len(r) for r in fake.extract_requests] == [1] * 4
    assert_clean(fake)


def test_a_uuid_delix_does_not_know_is_uploaded_again_like_a_404(out: str) -> None:
    fake = _Invalid({"files.3.uuid": ["The selected files.3.uuid is invalid."]}, first_only=True)
    sources = [*images(4), source("odd", b"INVALID")]
    summary, error, _ = run(fake, out, sources, max_concurrency=7)
    assert error is None and summary is not None
    assert summary.rows["processed"] == 5 and fake.calls["upload_files"] == 2, "stored again once"
    assert_clean(fake)


def test_an_engine_refusal_stops_the_run_with_its_message(out: str, caplog: pytest.LogCaptureFixture) -> None:
    fake = _Invalid({"engine.name": ["The selected engine.name is invalid."]})
    with caplog.at_level(logging.ERROR):
        _summary, error, _ = run(fake, out, [*images(4), source("odd", b"INVALID")], max_concurrency=7)
    assert isinstance(error, DelixValidationError) and error.about_engine
    assert fake.refused == 1 and fake.extract_requests == [], "no file fares better alone: not split"
    assert "failed unexpectedly" not in caplog.text and "Traceback" not in caplog.text
    assert_clean(fake)
