"""Every error code a row of the table can carry: one home, so a code is never spelled twice.

The values are part of the output contract (dashboards filter on them): never rename one.
Three families share the ``error`` column:

* our own validation refused the input before any call (status ``invalid``);
* the pipeline's own codes for what the API did to a page it accepted (status ``failed``);
* the API's ErrorEnum values, passed through as they come (``rejected``/``failed`` rows), see
  :class:`airflow_provider_delix.api.models.ErrorCode` -- those are not repeated here.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why our own checks refused an input or a page (rows with status ``invalid``)."""

    EMPTY_FILE = "empty_file"
    UNSUPPORTED_TYPE = "unsupported_type"
    CORRUPT_IMAGE = "corrupt_image"
    UNSUPPORTED_CODEC = "unsupported_codec"  # a well-formed file whose compression this build cannot decode
    NOT_FOUND = "not_found"
    PDF_NOT_SUPPORTED = "pdf_not_supported"  # a PDF given to the image operator
    TOO_LARGE = "too_large"  # over a size or pixel limit of Delix or of our decoders
    # Within Delix's limits, but larger than the task's max_stored_bytes: a setting, so the next
    # run looks again (core.supersede) and a raised budget reads the page.
    OVER_BUDGET = "over_budget"
    UNREADABLE = "unreadable"
    CORRUPT_PDF = "corrupt_pdf"  # damaged beyond what pypdf can repair
    ENCRYPTED_PDF = "encrypted_pdf"  # needs a password we do not have
    NOT_A_PDF = "not_a_pdf"  # given to the document operator but not a PDF
    PAGE_NOT_IN_DOCUMENT = "page_not_in_document"  # the page selection names a page past the end
    NO_DATA = "no_data"  # a prepared page without bytes and without a reason (a bug guard)


class PageError(StrEnum):
    """The pipeline's codes for pages the API accepted but did not answer with text (``failed``)."""

    FILE_EXPIRED = "file_expired"  # the stored file vanished twice (404 on extraction)
    PAGE_FAILED = "page_failed"  # the extraction reported the page as failed (refunded)
    NO_RESULT = "no_result"  # the extract did not mention the file or the page
    MALFORMED_ANSWER = "malformed_answer"  # Delix's answer could not be read or contradicted itself
    # The paid request's answer was lost after sending, twice (or once, and the re-send was
    # refused): maybe charged, not sent again in the run.
    ANSWER_LOST = "answer_lost"
    # Failed inside a pack collected by a later attempt, with ``retry_packed_failures``: waiting
    # to be sent alone, as an image (the error message keeps what the pack said).
    FAILED_IN_PACK = "failed_in_pack"
    # Delix's upload answer counts the stored PDF's pages other than we do: which of its pages is
    # which of ours is unknown, so the file is deleted unread (nothing charged). Settled: the same
    # bytes count the same way next time.
    PAGE_COUNT_MISMATCH = "page_count_mismatch"
    # Delix refused the extraction request for the file alone with a 422 that carries no
    # ErrorEnum value (Laravel's validation answer, or only a message): settled like the
    # ErrorEnum refusals; the row's message quotes what Delix said.
    REQUEST_INVALID = "request_invalid"


# What a page that failed inside a pack may have failed of that sending it alone can change.
RETRY_ALONE = frozenset({PageError.PAGE_FAILED, PageError.NO_RESULT})


# Planning refuses a page that can never fit in the budget (its own code since over_budget).
TOO_LARGE_FOR_BUDGET = Reason.OVER_BUDGET.value
