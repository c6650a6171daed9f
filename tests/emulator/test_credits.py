"""Credits: initial_cost charged at creation, refunds for failed pages, the ledger, top-up."""

from __future__ import annotations

import hashlib
from typing import Any

from airflow_provider_delix.emulator.testing import InProcessEmulator

from .samples import ENGINE_FA, PROBE, Api, pdf, png


def test_ledger_counts_every_page_charge_and_refund(api: Api, emulator: InProcessEmulator) -> None:
    ok, bad = png("ok"), png("bad", fail=True)
    document = pdf(["1", "2", "3"])
    ok_id, bad_id, doc_id = api.store(ok, bad, document)
    api.images({"engine": ENGINE_FA, "files": [{"uuid": ok_id}, {"uuid": bad_id}]})
    api.documents({"engine": PROBE, "files": [{"uuid": doc_id, "page": "2-3"}]})
    api.images({"engine": ENGINE_FA, "files": [{"uuid": ok_id}]})
    stats = emulator.stats()
    sha = {
        name: hashlib.sha256(data).hexdigest() for name, data in [("ok", ok), ("bad", bad), ("doc", document)]
    }
    assert stats["charges"] == {
        f"{sha['ok']}:1": 2,
        f"{sha['bad']}:1": 1,
        f"{sha['doc']}:2": 1,
        f"{sha['doc']}:3": 1,
    }
    assert stats["refunds"] == {f"{sha['bad']}:1": 1}
    assert stats["credits"]["charged"] == 400 + 200 + 200 and stats["credits"]["refunded"] == 200
    assert stats["pages"] == {"processed": 4, "failed": 1}


def test_not_enough_credits_then_top_up(emulator_factory: Any) -> None:
    emulator = emulator_factory(credits=300)
    api = Api(emulator)
    a, b = api.store(png("a"), png("b"))
    body = {"engine": ENGINE_FA, "files": [{"uuid": a}, {"uuid": b}]}
    answer = api.images(body)
    assert answer.status_code == 422 and answer.json()["error"] == "NO_SUFFICIENT_CREDITS"
    stats = emulator.stats()
    assert (
        stats["credits"] == {"balance": 300, "charged": 0, "refunded": 0} and stats["extracts"]["total"] == 0
    )
    emulator.configure(add_credits=100)
    assert api.images(body).status_code == 201
    assert emulator.stats()["credits"]["balance"] == 0
    emulator.configure(credits=250)
    assert emulator.stats()["credits"]["balance"] == 250


def test_every_failed_page_is_refunded(emulator_factory: Any) -> None:
    emulator = emulator_factory(fail_page_rate=1.0, credits=10_000)
    api = Api(emulator)
    (uuid,) = api.store(pdf(["a"] * 7))
    queued = api.documents({"engine": ENGINE_FA, "files": [{"uuid": uuid}]}).json()["data"]
    done = api.wait_processed(queued["uuid"])
    assert done["failed_pages"] == 7 and done["returned_credits"] == 700
    pages = api.session.get(done["files"][0]["pages"], timeout=10).json()["data"]
    assert all(p == {"number": p["number"], "status": "failed"} for p in pages)
    assert emulator.stats()["credits"] == {"balance": 10_000, "charged": 700, "refunded": 700}
