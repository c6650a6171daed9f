"""Build the table row of a page from what became of it: one place for both kinds of row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from airflow_provider_delix.core.codes import PageError
from airflow_provider_delix.core.planning import FileOutcome, InvalidPage, PageTarget
from airflow_provider_delix.core.table import PageRow, RowStatus


def outcome_row(
    target: PageTarget,
    out: FileOutcome,
    *,
    engine: str,
    language: str | None,
    run_id: str,
    charged: int = 0,
    refunded: int = 0,
) -> PageRow:
    """The row of one page whose content got ``out`` (extracted, failed, rejected, or reused)."""
    return PageRow(
        source=target.source,
        source_sha256=target.source_sha256,
        page_number=target.page_number,
        status=RowStatus(out.status),
        text=out.text,
        error=out.error,
        error_message=out.error_message,
        file_uuid=out.file_uuid,
        extract_uuid=out.extract_uuid,
        engine=engine,
        language=language,
        normalization=target.normalization,
        credits_charged=charged,
        credits_refunded=refunded,
        run_id=run_id,
    )


def page_rows(
    targets: Sequence[PageTarget],
    out: FileOutcome,
    *,
    engine: str,
    language: str | None,
    run_id: str,
    charged: int = 0,
    refunded: int = 0,
) -> list[PageRow]:
    """The rows of one answered page: one per target with its content; the first carries the credits.

    Credits are charged once per content, so summing the table's credit columns gives back
    exactly what the extraction cost, however many sources share the content.
    """
    return [
        outcome_row(
            target,
            out,
            engine=engine,
            language=language,
            run_id=run_id,
            charged=charged if i == 0 else 0,
            refunded=refunded if i == 0 else 0,
        )
        for i, target in enumerate(targets)
    ]


def invalid_row(page: InvalidPage, *, engine: str, language: str, run_id: str) -> PageRow:
    """The row of a page our validation refused: no call was made, nothing was charged."""
    out = FileOutcome(RowStatus.INVALID, None, page.error, page.message, None, None)
    return outcome_row(page.target, out, engine=engine, language=language, run_id=run_id)


def left_from_pack(out: FileOutcome) -> FileOutcome:
    """A page that failed inside a pack one of whose sends lost its answer: not sent again in
    this run (a page is paid at most twice per run); the next run sends it alone."""
    return replace(
        out,
        error=PageError.FAILED_IN_PACK.value,
        error_message=f"{out.error}: {out.error_message or 'failed inside the pack'}; a send of the "
        "pack lost its answer (maybe charged), so the next run on this output sends it alone as an image",
    )


def failed_in_pack(out: FileOutcome) -> FileOutcome:
    """A page that failed inside a pack and is sent again alone (``retry_packed_failures``):
    its row until the image's own row replaces it, saying what the pack said."""
    return replace(
        out,
        error=PageError.FAILED_IN_PACK.value,
        error_message=f"{out.error}: {out.error_message or 'failed inside the pack'}; "
        "sent again alone as an image (retry_packed_failures)",
    )


def unanswered(file_uuid: str | None) -> FileOutcome:
    """A page that got no answer in this run although a lost send of its request is assumed
    charged: a row that holds that charge, which the next run's row carries on and replaces."""
    return FileOutcome(
        RowStatus.FAILED,
        None,
        PageError.ANSWER_LOST.value,
        "an extraction of this page was sent and its answer lost (assumed charged, see "
        "credits_at_risk); the run ended before the page was answered; the next run sends it again",
        file_uuid,
        None,
    )
