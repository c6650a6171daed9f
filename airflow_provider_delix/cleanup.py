"""``python -m airflow_provider_delix.cleanup``: delete the Delix files no task on the key needs.

Runs the orphan sweep of ``docs/cleanup.md`` once for a connection, outside any DAG: lists the
account, waits for the uploads in flight, and deletes what no live task claims (or, when the
connection says ``foreign_uploaders``, reports it with its expiry). ``--dry-run`` only lists.
Prints the JSON report as the last line of stdout; exits 1 when a file could not be deleted.
"""

from __future__ import annotations

import argparse
import json
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m airflow_provider_delix.cleanup",
        description="Delete the files on a Delix account that no task on its key still needs.",
    )
    p.add_argument("--conn-id", default="delix_default", help="the delix connection (default delix_default)")
    p.add_argument("--dry-run", action="store_true", help="delete nothing; list what would be deleted")
    p.add_argument(
        "--intent-wait", type=float, default=60.0, help="seconds to wait for uploads in flight (default 60)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from airflow_provider_delix.hooks.delix import DelixHook

    hook = DelixHook(args.conn_id)
    try:
        report = hook.cleanup_orphans(dry_run=args.dry_run, intent_wait=args.intent_wait)
    finally:
        hook.close()
    print(report.describe(), file=sys.stderr)
    # One line, last: Airflow 2 may log to stdout before it (connection lookups).
    print(json.dumps({"conn_id": args.conn_id, **report.to_dict()}), flush=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
