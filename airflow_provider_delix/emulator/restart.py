"""``POST /_emulator/restart``: the server restarts and forgets what a real restart would lose.

Stored files and extracts still processing are gone (their uuids answer 404, as after
expiry); what Delix keeps in its database stays: the charge ledger and credits, finished
extracts, the counters (``faults`` counts ``restart``) and every setting. Tests use it to
strand pages: a file that vanishes twice between upload and extraction ends ``file_expired``.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_delix.emulator.app import EmulatorApp


def restart(app: EmulatorApp) -> dict[str, Any]:
    """Forget stored files and in-flight extracts; keep charges, credits, settings and counters."""
    app.extractor.queue.clear()  # queued extracts never start; a running one finishes unseen
    account = app.account
    with account.lock:
        files = len(account.files)
        account.files.clear()
        account.stored_bytes = 0
        lost = account.forget_processing()
    app.extractor.queue.wake()  # workers waiting on the queue see it empty
    app.stats.count_fault("restart")  # shows in GET /_emulator/stats under "faults"
    return {"restarted": True, "files_lost": files, "extracts_lost": lost}
