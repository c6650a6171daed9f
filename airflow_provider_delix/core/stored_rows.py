"""Read selected columns of every stored row: journals first, then the published parts.

Journals are read before the parts: a journal that vanishes in between was published into a
part that is then read, so no row slips between the two reads (the resume index reads the
table through here too, :meth:`.store.OutputStore.resume_rows`). A filter narrows the parts' read
(pushed down to Parquet); journals are small and read whole, so callers filter their rows too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

from airflow_provider_delix.core.row_journal import read_journals
from airflow_provider_delix.core.table import iter_batches

if TYPE_CHECKING:
    import pyarrow.dataset as ds

    from airflow_provider_delix.core.store import OutputStore


def stored_rows(
    store: OutputStore, columns: Sequence[str], where: ds.Expression | None = None
) -> Iterator[tuple[Any, ...]]:
    """The values of ``columns`` of each stored row (journal rows unfiltered by ``where``)."""
    state = store.state
    journals = [p for tag in state.tags("journal") for p in state.files("journal", tag, ".arrow")]
    parts = iter_batches(store.output_path, columns, storage_options=store.storage_options, where=where)
    for batch in chain(read_journals(state, journals, missing_ok=True).values(), parts):
        yield from zip(*(batch.column(c).to_pylist() for c in columns), strict=True)
