"""``delix-emulator`` / ``python -m airflow_provider_delix.emulator``: run the emulator.

Prints exactly one line, the base URL (``http://HOST:PORT/v1``), once it accepts connections:
scripts and ``testing.start_subprocess`` wait for that line. Stops cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from airflow_provider_delix.emulator.app import EmulatorApp
from airflow_provider_delix.emulator.config import (
    DOCUMENT_MODES,
    OCR_BACKENDS,
    UNLIMITED_CREDITS,
    EmulatorConfig,
)
from airflow_provider_delix.emulator.server import EmulatorServer


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="delix-emulator", description="Local emulator of the Delix OCR API (v1)."
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("--api-key", default="test-key", help="the only Bearer key accepted")
    p.add_argument("--ocr", choices=OCR_BACKENDS, default="groundtruth")
    p.add_argument("--credits", type=int, default=UNLIMITED_CREDITS, help="starting balance")
    p.add_argument("--latency-upload", type=float, default=0.0, help="seconds per upload request")
    p.add_argument("--latency-extract-base", type=float, default=0.0, help="seconds per extraction request")
    p.add_argument("--latency-extract-page", type=float, default=0.0, help="extra seconds per page processed")
    p.add_argument(
        "--latency-extract-answer",
        type=float,
        default=0.0,
        help="seconds between an extraction's charge and its answer (slower than the client's timeout)",
    )
    p.add_argument("--latency-delete", type=float, default=0.0, help="seconds per delete")
    p.add_argument("--latency-other", type=float, default=0.0, help="seconds per list/poll/contents request")
    p.add_argument("--rate-429", type=float, default=0.0)
    p.add_argument("--rate-500", type=float, default=0.0)
    p.add_argument("--rate-503", type=float, default=0.0)
    p.add_argument("--rate-drop", type=float, default=0.0, help="close the connection without an answer")
    p.add_argument(
        "--rate-general-exception", type=float, default=0.0, help="422 with error GENERAL_EXCEPTION"
    )
    p.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds sent with 429")
    p.add_argument("--fail-page-rate", type=float, default=0.0, help="share of pages whose OCR fails")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--document-mode", choices=DOCUMENT_MODES, default="auto")
    p.add_argument("--per-page", type=int, default=15, help="page size of the contents endpoint")
    p.add_argument(
        "--fallback-text-bytes", type=int, default=64, help="groundtruth text size without embedded text"
    )
    p.add_argument("--async-workers", type=int, default=2, help="queued extracts processed at once")
    p.add_argument(
        "--queue-delay",
        type=float,
        default=0.0,
        help="seconds a queued extract waits before a worker starts it",
    )
    p.add_argument(
        "--async-pages-per-second",
        type=float,
        default=0.0,
        help="pages per second of one async worker (0: --latency-extract-page per page)",
    )
    p.add_argument("--log-requests", action="store_true", help="log every request to stderr")
    p.add_argument(
        "--malformed-rate",
        type=float,
        default=0.0,
        help="share of applied uploads/extractions whose answer is spoiled (see --malformed-kinds)",
    )
    p.add_argument(
        "--malformed-every", type=int, default=0, help="spoil every n-th answer of each endpoint (0: off)"
    )
    p.add_argument(
        "--malformed-kinds",
        default=EmulatorConfig.malformed_kinds,
        help="comma list: upload_missing_entry, extract_not_json, page_without_status, "
        "page_number_out_of_range, image_processing",
    )
    p.add_argument(
        "--rate-lost-after-apply",
        type=float,
        default=0.0,
        help="share of applied uploads/extractions whose answer is then lost (see --lost-after-apply-kinds)",
    )
    p.add_argument(
        "--lost-after-apply-kinds",
        default=EmulatorConfig.lost_after_apply_kinds,
        help="comma list: drop (close the connection), 502, 504, 524 (a gateway's HTML error page)",
    )
    p.add_argument(
        "--lost-after-apply-on",
        default=EmulatorConfig.lost_after_apply_on,
        help="comma list: upload, extraction",
    )
    p.add_argument(
        "--lost-after-apply-every",
        type=int,
        default=EmulatorConfig.lost_after_apply_every,
        help="instead of the rate: lose every n-th applied answer (the first kind); 0 = off",
    )
    return p


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    fields = vars(args).copy()
    fields.pop("host")
    fields.pop("port")
    return EmulatorConfig(**fields)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"delix-emulator: {exc}", file=sys.stderr)
        return 2
    server = EmulatorServer(EmulatorApp(config), args.host, args.port)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    server.start()
    print(server.base_url, flush=True)
    while not stop.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
