"""Run an example DAG once in this process: ``python dags/<dag file>.py [--date D] [--conf JSON]``.

Why: ``dag.test()`` runs every task in one process with the normal logs, which is the
quickest way to try a DAG (and what scripts/demo.sh and the tests use). It needs
``AIRFLOW_HOME`` with a migrated database (``airflow db migrate``) and, on Airflow 3, the DAG
file inside ``AIRFLOW__CORE__DAGS_FOLDER``. The keyword for the date differs between
Airflow 2 (``execution_date``) and 3 (``logical_date``); this hides that.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
from typing import Any


def test_dag(dag: Any, argv: list[str] | None = None) -> int:
    """Run ``dag`` once; print and return 0 when the run succeeded, 1 otherwise."""
    parser = argparse.ArgumentParser(description=f"Run the {dag.dag_id} DAG once with dag.test().")
    parser.add_argument("--date", help="logical date YYYY-MM-DD (default: now)")
    parser.add_argument("--conf", default="{}", help="run conf as JSON: the params to override")
    args = parser.parse_args(argv)
    kwargs: dict[str, Any] = {"run_conf": json.loads(args.conf)}
    if args.date:
        date = dt.datetime.fromisoformat(args.date).replace(tzinfo=dt.UTC)
        accepted = inspect.signature(dag.test).parameters
        kwargs["logical_date" if "logical_date" in accepted else "execution_date"] = date
    _map_fab_users_on_airflow2()
    run = dag.test(**kwargs)
    state = str(getattr(run.state, "value", run.state))
    print(f"DAG_RUN_STATE={state}")
    return 0 if state == "success" else 1


def _map_fab_users_on_airflow2() -> None:
    """Let Airflow 2's ``dag.test()`` re-run a date it has run before.

    Airflow 2.11 deletes the earlier run of that date first; the delete cascades to
    ``dag_run_note``, whose foreign key names FAB's ``ab_user`` table, and SQLAlchemy cannot
    resolve that key (``NoReferencedTableError``) unless FAB's models are imported. The
    scheduler imports them; a bare ``dag.test()`` does not. Airflow 3 has no such key.
    """
    import contextlib

    import airflow

    if airflow.__version__.startswith("2."):
        with contextlib.suppress(ImportError):
            import airflow.providers.fab.auth_manager.models
