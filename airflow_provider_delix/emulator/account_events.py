"""A foreign uploader: another program on the same key, for the orphan tests.

``POST /_emulator/foreign_upload {"files": n}`` stores ``n`` small PNGs that no task's registry
claims. A restart is :mod:`.restart`; answers lost after the request was applied are settings
(``rate_lost_after_apply``, ``lost_after_apply_every``: :mod:`.lost_answers`).
"""

from __future__ import annotations

import hashlib
import uuid as uuidlib
from typing import TYPE_CHECKING, Any

from airflow_provider_delix.emulator.state import StoredBlob

if TYPE_CHECKING:
    from airflow_provider_delix.emulator.app import EmulatorApp

# The smallest valid PNG (1 x 1, grey): what a foreign uploader stores.
_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010800000000"
    "3a7e9b550000000a49444154789c63600000000200015d0b2d0e0000000049454e44ae426082"
)


def foreign_upload(app: EmulatorApp, files: Any) -> list[str]:
    """Store ``files`` small PNGs as another program on the key would; their uuids."""
    if not isinstance(files, int) or isinstance(files, bool) or files < 1:
        raise ValueError("files must be a positive integer")
    now = app.clock.now()
    blobs = [
        StoredBlob(
            uuid=str(uuidlib.uuid4()),
            kind="png",
            page_count=1,
            data=_PNG,
            sha256=hashlib.sha256(_PNG).hexdigest(),
            uploaded_at=now,
        )
        for _ in range(files)
    ]
    app.account.store(blobs, now)  # 422 STORAGE_* when the account is full, as for anyone
    return [b.uuid for b in blobs]
