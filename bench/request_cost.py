"""Client CPU per HTTP request: DelixHook (lean and session path), requests.Session, http.client.

The run makes 1.4 requests per image (an upload and an extraction per 5 files, one delete per
file, which the API requires), so the CPU of one request bounds the client CPU per page from
below. Each variant sends ``--requests`` DELETEs of an unknown uuid (404) to a zero-latency
emulator in another process, one after the other, on one keep-alive connection. The hook is
measured twice: on its lean path (hooks/_transport.py, what a run uses) and with the lean path
switched off, through ``Session.request`` (what it did before).

    .venv/bin/python bench/request_cost.py [--requests 2000] [--smoke]
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CONN_ID, start_emulator, tempdir, use_connection

MISSING = "00000000-0000-0000-0000-000000000000"
REQUESTS_PER_PAGE = 1 / 5 + 1 / 5 + 1


def cpu_ms(count: int, call: Callable[[], object]) -> float:
    call()  # connect first
    before = os.times()
    for _ in range(count):
        call()
    after = os.times()
    return 1000 * (after.user + after.system - before.user - before.system) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    count = 50 if args.smoke else args.requests
    with tempdir("requests") as tmp, start_emulator() as emu:
        use_connection(emu, Path(tmp))
        import requests

        from airflow_provider_delix.hooks.delix import DelixHook

        hook = DelixHook(CONN_ID)
        plain = DelixHook(CONN_ID)
        plain.get_conn()
        plain._lean = None  # the session's path
        session = requests.Session()
        url = f"{emu.base_url}/files/{MISSING}"
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.netloc)

        def raw() -> None:
            conn.request("DELETE", parts.path, headers=emu.headers)
            conn.getresponse().read()

        figures = {
            "DelixHook.delete_file": cpu_ms(count, lambda: hook.delete_file(MISSING)),
            "DelixHook.delete_file, session path": cpu_ms(count, lambda: plain.delete_file(MISSING)),
            "requests.Session.delete": cpu_ms(count, lambda: session.delete(url, headers=emu.headers)),
            "http.client": cpu_ms(count, raw),
        }
        hook.close()
        plain.close()
        session.close()
        conn.close()
    for name, ms in figures.items():
        print(
            f"RESULT request CPU {name} = {ms:.3f} ms/request "
            f"(x {REQUESTS_PER_PAGE} requests/page = {ms * REQUESTS_PER_PAGE:.3f} ms/page)"
        )


if __name__ == "__main__":
    main()
