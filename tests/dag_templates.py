"""DAG files for the operator tests: one extraction operator in a one-task DAG, arguments spelled out.

Why this exists: every DAG test carried the same DAG boilerplate as a ``str.format`` template,
plus a helper to fill it in; only the operator's arguments differed, and those are what a test
is about. :func:`operator_dag` writes the boilerplate once and takes the arguments as keywords,
so each test still shows every setting its run uses. :func:`write_operator_dag` writes it into
the DAG folder with ``AirflowEnv.write_dag`` (``tests/airflow_runner.py``), which adds the
``dag.test()`` footer.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

from airflow_runner import AirflowEnv

# The operator is chosen by its input argument: ``images=`` or ``documents=``.
_OPERATORS = {
    "images": ("image_extraction", "ImageExtractionOperator"),
    "documents": ("document_extraction", "DocumentExtractionOperator"),
}


def operator_dag(dag_id: str, *, task_id: str = "ocr", preamble: str = "", **arguments: Any) -> str:
    """Source of DAG ``dag_id``: one extraction operator called with ``arguments``, never retried.

    Values are written as Python literals (paths as their string), in the order given.
    ``preamble`` is module code placed before the DAG (helpers, an ``atexit`` hook).
    """
    (kind,) = [name for name in _OPERATORS if name in arguments]
    module, operator = _OPERATORS[kind]
    lines = "".join(f"        {name}={_literal(value)},\n" for name, value in arguments.items())
    return (
        "import pendulum\n"
        "from airflow.providers.common.compat.sdk import DAG\n"
        f"from airflow_provider_delix.operators.{module} import {operator}\n"
        f"{textwrap.dedent(preamble)}\n"
        f"with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False)"
        " as dag:\n"
        f"    {operator}(\n"
        f"        task_id={task_id!r},\n"
        f"{lines}"
        "        retries=0,\n"
        "    )\n"
    )


def write_operator_dag(env: AirflowEnv, dag_id: str, **arguments: Any) -> Path:
    """:func:`operator_dag` written as ``<dag_id>.py`` into ``env``'s DAG folder, ready to run."""
    return env.write_dag(dag_id, operator_dag(dag_id, **arguments))


def _literal(value: Any) -> str:
    return repr(os.fspath(value) if isinstance(value, os.PathLike) else value)
