"""Admin endpoints, reset, the subprocess launcher and the CLI's flags."""

from __future__ import annotations

import signal
from typing import Any

from airflow_provider_delix.emulator.__main__ import build_parser, config_from_args
from airflow_provider_delix.emulator.testing import InProcessEmulator, cli_args, start_emulator_process

from .samples import ENGINE_FA, Api, png
from .test_async_queue import queue_one


def test_stats_shape(emulator: InProcessEmulator, api: Api) -> None:
    (uuid,) = api.store(png("x"))
    api.images({"engine": ENGINE_FA, "files": [{"uuid": uuid}]})
    stats = emulator.stats()
    assert set(stats) >= {
        "calls",
        "calls_by_status",
        "faults",
        "files",
        "extracts",
        "credits",
        "charges",
        "refunds",
        "pages",
        "callbacks",
        "queue",
        "clock",
    }
    assert stats["calls"] == {"POST /files": 1, "POST /image-extraction": 1}
    assert stats["calls_by_status"]["POST /files"] == {"207": 1}
    assert set(stats["files"]) == {"count", "bytes", "max_count", "max_bytes", "expired"}
    assert stats["extracts"] == {"total": 1, "processing": 0, "processed": 1}
    assert stats["queue"] == {"waiting": 0, "running": 0, "workers": 2}


def test_reset_forgets_everything_and_restores_settings(emulator_factory: Any) -> None:
    emulator = emulator_factory(credits=1000)
    api = Api(emulator)
    (uuid,) = api.store(png("x"))
    api.images({"engine": ENGINE_FA, "files": [{"uuid": uuid}]})
    emulator.configure(per_page=3, rate_429=0.0)
    before = emulator.advance_clock(100)
    emulator.reset()
    stats = emulator.stats()
    assert stats["files"]["count"] == 0 and stats["calls"] == {} and stats["credits"]["balance"] == 1000
    assert emulator.config()["per_page"] == 15 and stats["clock"] < before
    assert api.extract("anything").status_code == 404


def test_reset_restarts_the_malformed_every_count(emulator_factory: Any) -> None:
    # A test that resets the emulator between cases expects the same spoiled answers as on a
    # fresh one: every second upload answer one entry short, counted from the reset.
    api = Api(emulator_factory(malformed_every=2, malformed_kinds="upload_missing_entry"))

    def entries() -> list[int]:
        return [len(api.upload(png(f"{i}a"), png(f"{i}b")).json()["data"]) for i in range(3)]

    assert entries() == [2, 1, 2]
    api.emulator.reset()
    assert entries() == [2, 1, 2]


def test_cli_flags_map_to_settings() -> None:
    args = build_parser().parse_args(
        [
            "--port",
            "0",
            "--api-key",
            "k",
            "--ocr",
            "groundtruth",
            "--credits",
            "5",
            "--latency-upload",
            "0.5",
            "--latency-extract-base",
            "1",
            "--latency-extract-page",
            "2",
            "--latency-delete",
            "3",
            "--rate-429",
            "0.1",
            "--rate-500",
            "0.1",
            "--rate-503",
            "0.1",
            "--rate-drop",
            "0.1",
            "--fail-page-rate",
            "0.2",
            "--seed",
            "9",
            "--document-mode",
            "async",
            "--per-page",
            "7",
            "--fallback-text-bytes",
            "2000",
            "--async-workers",
            "3",
            "--queue-delay",
            "0.5",
            "--async-pages-per-second",
            "2.5",
        ]
    )
    config = config_from_args(args)
    assert (config.api_key, config.credits, config.latency_extract_page, config.rate_drop) == (
        "k",
        5,
        2.0,
        0.1,
    )
    assert (config.document_mode, config.per_page, config.fallback_text_bytes, config.seed) == (
        "async",
        7,
        2000,
        9,
    )
    assert (config.async_workers, config.queue_delay, config.async_pages_per_second) == (3, 0.5, 2.5)
    assert cli_args({"rate_429": 0.5, "log_requests": True}) == ["--rate-429", "0.5", "--log-requests"]


def test_subprocess_emulator_serves_and_stops_on_sigterm() -> None:
    with start_emulator_process(api_key="sub-key", per_page=4) as emulator:
        assert emulator.base_url.startswith("http://127.0.0.1:") and emulator.base_url.endswith("/v1")
        api = Api(emulator)
        assert api.store(png("x"))
        assert emulator.stats()["files"]["count"] == 1 and emulator.config()["per_page"] == 4
        emulator.process.send_signal(signal.SIGTERM)
        assert emulator.process.wait(10) == 0


def test_restart_loses_files_and_running_extracts_but_keeps_charges(emulator_factory: Any) -> None:
    emulator = emulator_factory(credits=1000, queue_delay=3600)
    api = Api(emulator)
    (done,) = api.store(png("done"))
    finished = api.images({"engine": ENGINE_FA, "files": [{"uuid": done}]}).json()["data"]["uuid"]
    (kept,) = api.store(png("lost"))
    queued = queue_one(api)  # processing: the queue holds it for an hour
    charged = emulator.stats()["credits"]
    lost = emulator.restart()
    assert lost == {"restarted": True, "files_lost": 3, "extracts_lost": 1}
    assert api.extract(queued).status_code == 404
    stats = emulator.stats()
    assert stats["files"]["count"] == 0 and stats["credits"] == charged and stats["faults"] == {"restart": 1}
    assert stats["charges"] and api.extract(finished).status_code == 200  # what the database keeps
    answer = api.images({"engine": ENGINE_FA, "files": [{"uuid": kept}]})
    assert answer.status_code == 404  # the file is gone, nothing charged
    assert emulator.stats()["credits"] == charged
