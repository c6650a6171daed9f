"""Row journals: a chunk's rows as one small Arrow IPC file, durable before ``append`` returns.

Why a module of its own: the journal is the store's promise that a paid page is never lost --
its rows sit in ``_delix_state/journal/<run tag>/<chunk id>.arrow`` until the part file that
holds them is published -- and three readers depend on its format: the writer, the recovery of
crashed writers, and resume, which counts every journal row as done. The encoding and the
reading live together so they cannot drift apart.
"""

from __future__ import annotations

import pyarrow as pa

from airflow_provider_delix.core.state_dir import StateDir, StateUnreadableError
from airflow_provider_delix.core.table import SCHEMA


def journal_bytes(batch: pa.RecordBatch) -> bytes:
    """The journal file of one chunk's rows (an Arrow IPC stream of the table's schema)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, SCHEMA) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())


def read_journals(
    state: StateDir, paths: list[str], *, missing_ok: bool = False
) -> dict[str, pa.RecordBatch]:
    """The rows of each journal; one that exists but cannot be read raises :class:`StateUnreadableError`."""
    batches = {}
    for path, data in state.read_many(paths, missing_ok=missing_ok).items():
        try:
            batches[path] = pa.ipc.open_stream(data).read_all().combine_chunks().to_batches()[0]
        except (pa.ArrowInvalid, IndexError) as exc:
            raise StateUnreadableError(
                f"The journal {path} of the output table cannot be read ({type(exc).__name__}): "
                "resuming without it could pay again for its pages. Restore or remove it by hand."
            ) from None
    return batches
