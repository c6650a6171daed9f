"""Paid requests whose answer was lost after sending: what the table assumes they cost, and the count.

An extraction whose answer is lost after it was sent (a read timeout, a connection dropped
after sending, a gateway's 502/504) may have been applied and charged by Delix, or not; the
API has no way to ask (no balance endpoint, no extract found by its files). The hook re-sends
such a request at most once (``api/retry.py``). What the run then records:

* **answered on the re-send**: the pages get their rows as usual, and their credits also carry
  the lost send, assumed charged at the answered extract's ``initial_cost`` (or at the estimate
  its pages carry when it does not say, see ``core/collect.py``): read timeouts,
  drops after sending and gateway errors usually mean Delix did the work, so the table then
  equals Delix's ledger;
* **lost on both sends** (or lost once and then refused until the policy gave up): the pages
  get ``failed`` rows with error ``answer_lost``, which the next run on the same output path
  sends again (``core/supersede.py``), carrying the assumed charge of every lost send at the
  price per page of docs/api.md, "Credits" (200 per image page, 100 per PDF page).

* **lost, then refused or unreadable** (the re-send is answered 404, a 422 such as
  ``GENERAL_EXCEPTION`` or ``NO_SUFFICIENT_CREDITS``, or an answer that cannot be read): the
  lost send is *carried* by the files' pages (:attr:`~.planning.ChunkFile.carried`), so
  whatever rows those pages get include it. Those pages are **not sent again in this run**
  (:func:`refused_after_lost_results`): they get ``answer_lost`` rows holding the carried
  charge, which the next run sends again. Retrying them here -- one by one, or after a
  re-upload -- would be a new request with a re-send of its own: a lost answer there makes a
  third paid send of the same page. Not sending them needs no new rule in the hook, and it is
  what a request lost on both sends already gets.

Either way the lost sends are counted in :class:`~.run_stats.RunStats`: ``requests_in_doubt``
(sends), ``pages_in_doubt`` (their pages) and ``credits_at_risk`` (the credits the table assumed
for them: what it over-counts if Delix did not apply them). Every request that lost an answer
ends its pages' part in the run, so a page is paid at most twice per run, and the manifest says
by how much the table may exceed the real charge.
"""

from __future__ import annotations

from collections.abc import Sequence

from airflow_provider_delix.api.errors import DelixError, DelixTransientError
from airflow_provider_delix.api.models import Extract, page_price
from airflow_provider_delix.core.codes import PageError
from airflow_provider_delix.core.collect import PageResult
from airflow_provider_delix.core.planning import ChunkFile, FileOutcome
from airflow_provider_delix.core.run_stats import RunStats
from airflow_provider_delix.core.table import RowStatus, split_credits


def charge_lost_sends(
    results: Sequence[PageResult], extract: Extract, stats: RunStats, *, lost: int | None = None
) -> int:
    """An answered request sent more than once: its pages also carry the sends whose answer was lost.

    ``lost`` defaults to what the hook recorded on the extract; returns the credits added.
    """
    sends = extract.lost_attempts if lost is None else lost
    if sends <= 0 or not results:
        return 0
    # One send cost what the answered one did: its initial_cost, or the estimate its pages
    # carry when the answer did not say (core/collect.py's extract_charge).
    per_send = extract.initial_cost if extract.initial_cost is not None else sum(r.charged for r in results)
    credits = sends * per_send
    for result, share in zip(results, split_credits(credits, len(results)), strict=True):
        result.charged += share
        result.lost_sends += sends
    stats.add_lost_answers(sends, len(results), credits)
    return credits


def answer_lost_results(
    file_uuids: Sequence[str | None], error: DelixTransientError, kind: str, stats: RunStats
) -> list[PageResult]:
    """One ``answer_lost`` result per requested page (``file_uuids``: each page's stored file).

    Each carries its share of the lost sends' assumed charge; the sends are counted as in doubt.
    """
    sends = max(error.lost_attempts, 1)
    credits = sends * page_price(kind) * len(file_uuids)
    stats.add_lost_answers(sends, len(file_uuids), credits)
    message = (
        f"{error} The answer was lost after sending {sends} time(s) (answer_lost): Delix may have "
        f"charged each send, and the table counts them as charged. The next run on this output "
        "sends these pages again."
    )
    return [
        PageResult(
            FileOutcome(RowStatus.FAILED, None, PageError.ANSWER_LOST, message, uuid, None), charged=share
        )
        for uuid, share in zip(file_uuids, split_credits(credits, len(file_uuids)), strict=True)
    ]


def refused_after_lost_results(file_uuids: Sequence[str | None], error: DelixError) -> list[PageResult]:
    """One ``answer_lost`` result per requested page of a request whose re-send was refused
    after a lost send (``file_uuids``: each page's stored file), left to the next run.

    The results carry no credits of their own: the lost sends are already on the files
    (:func:`carry_lost_sends`, which also counted them), and each page's row adds them.
    """
    message = (
        f"{error} An earlier send of this request lost its answer after sending (answer_lost): "
        f"Delix may have charged it, and the table counts it as charged. Not sent again in this run, "
        "so no page is paid more than twice; the next run on this output sends these pages again."
    )
    outcome = {
        uuid: FileOutcome(RowStatus.FAILED, None, PageError.ANSWER_LOST, message, uuid, None)
        for uuid in set(file_uuids)
    }
    return [PageResult(outcome[uuid]) for uuid in file_uuids]


def carry_lost_sends(files: Sequence[ChunkFile], error: DelixError, kind: str, stats: RunStats) -> None:
    """A request whose re-send was refused or unreadable after a lost answer: every requested page
    of ``files`` carries the lost sends' assumed charge into whatever row it gets."""
    sends = error.lost_attempts
    if sends <= 0:
        return
    per_page = sends * page_price(kind)
    pages = 0
    for file in files:
        file.carried = (file.carried[0] + per_page, file.carried[1])
        pages += len(file.requested_pages)
    stats.add_lost_answers(sends, pages, per_page * pages)
