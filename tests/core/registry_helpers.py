"""Helpers of the key registry tests: a registry in a temp dir, uploads, a dead writer's records."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fakes import FakeDelix

from airflow_provider_delix.api.models import StoredFile
from airflow_provider_delix.core.key_registry import KeyRegistry


def registry(tmp_path: Path, **kwargs: Any) -> KeyRegistry:
    kwargs.setdefault("heartbeat_seconds", 0.05)
    kwargs.setdefault("stale_after_seconds", 5.0)
    return KeyRegistry(str(tmp_path / "registry"), "acct", **kwargs)


def upload(fake: FakeDelix, n: int = 1) -> list[str]:
    return [
        r.uuid
        for r in fake.upload_files([(f"f{i}.png", b"x" * 10) for i in range(n)])
        if isinstance(r, StoredFile)
    ]


def dead_writer(reg: KeyRegistry, tag: str, claims: list[str], intents: dict[str, int] | None = None) -> None:
    """The records a killed writer leaves: a lease that stopped beating long ago, and its claims."""
    lease = {"run_tag": tag, "host": "elsewhere", "pid": 1, "beat": 3, "heartbeat": time.time() - 3600}
    reg.state.write_bytes(f"{reg.state.root}/writers/{tag}.json", json.dumps(lease).encode())
    body = {"intents": intents or {}, "claims": claims}
    reg.state.write_bytes(f"{reg.state.root}/claims/{tag}.json", json.dumps(body).encode())
