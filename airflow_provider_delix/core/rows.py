"""Build the table row of a page from what became of it: one place for both kinds of row."""

from __future__ import annotations

from airflow_provider_delix.core.planning import FileOutcome, InvalidPage, PageTarget
from airflow_provider_delix.core.table import PageRow, RowStatus


def outcome_row(
    target: PageTarget,
    out: FileOutcome,
    *,
    engine: str,
    language: str,
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


def invalid_row(page: InvalidPage, *, engine: str, language: str, run_id: str) -> PageRow:
    """The row of a page our validation refused: no call was made, nothing was charged."""
    out = FileOutcome(RowStatus.INVALID, None, page.error, page.message, None, None)
    return outcome_row(page.target, out, engine=engine, language=language, run_id=run_id)
