"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point.

The connection form is declared here (``conn-fields``, ``ui-field-behaviour``) because
Airflow 3.2+ builds the form from provider info without importing the hook; the hook's
``get_ui_field_behaviour``/``get_connection_form_widgets`` read the same constants for
Airflow 2.11 – 3.1, so the two can never disagree.
"""

from __future__ import annotations

from typing import Any

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["login", "port", "schema"],
    "relabeling": {"password": "API key", "host": "API base URL"},
    "placeholders": {
        "host": "https://api.delix.ir/v1",
        "password": "the key from the Delix dashboard",
        "extra": '{"timeout": 120, "max_retries": 5}',
    },
}

CONN_FIELDS: dict[str, dict[str, Any]] = {
    "timeout": {
        "label": "Request timeout (s)",
        "description": "Seconds to connect, and to wait for one answer other than an extraction's "
        "(default 120).",
        "schema": {"type": ["integer", "null"], "minimum": 1},
    },
    "extraction_timeout": {
        "label": "Extraction timeout (s)",
        "description": "Seconds an extraction waits for its answer (default 600). A timed-out "
        "extraction may be charged anyway: it is re-sent at most once.",
        "schema": {"type": ["integer", "null"], "minimum": 1},
    },
    "max_retries": {
        "label": "Max retries",
        "description": "Retries of a throttled (429), failing (5xx) or dropped request (default 5).",
        "schema": {"type": ["integer", "null"], "minimum": 0},
    },
    "retry_wait_max": {
        "label": "Max wait between retries (s)",
        "description": "Cap of the exponential backoff (default 60); a Retry-After is honoured.",
        "schema": {"type": ["integer", "null"], "minimum": 0},
    },
    "retry_max_elapsed": {
        "label": "Give up retrying after (s)",
        "description": "Total time one call may spend retrying (default 600).",
        "schema": {"type": ["integer", "null"], "minimum": 0},
    },
    "max_connections": {
        "label": "Max parallel connections",
        "description": "Keep-alive connections pooled for concurrent workers (default 32).",
        "schema": {"type": ["integer", "null"], "minimum": 1},
    },
    "registry_path": {
        "label": "Key registry path",
        "description": "Where the tasks on this key record their uploads, so leftovers can be deleted "
        "(fsspec URL or local path; default $AIRFLOW_HOME/delix/registry, right only when every task "
        "on the key runs on one host: with Celery or Kubernetes give shared storage, e.g. s3://...).",
        "schema": {"type": ["string", "null"]},
    },
    "foreign_uploaders": {
        "label": "Key shared outside Airflow",
        "description": "Other programs upload with this key: files no task claims are reported with "
        "their expiry, never deleted.",
        "schema": {"type": ["boolean", "null"]},
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-delix",
        "name": "Delix OCR",
        "description": "`Delix <https://delix.ir>`__ OCR API: OCR scanned archives (Persian first) "
        "into a Parquet table, one row per page.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "Delix",
                "external-doc-url": "https://delix.ir",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Delix", "python-modules": ["airflow_provider_delix.hooks.delix"]}],
        "operators": [
            {
                "integration-name": "Delix",
                "python-modules": [
                    "airflow_provider_delix.operators.image_extraction",
                    "airflow_provider_delix.operators.document_extraction",
                    "airflow_provider_delix.operators.cleanup",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "Delix", "python-modules": ["airflow_provider_delix.sensors.delix"]}
        ],
        "task-decorators": [
            {"name": "delix_ocr", "class-name": "airflow_provider_delix.decorators.delix_ocr.delix_ocr_task"},
            {
                "name": "delix_ocr_documents",
                "class-name": "airflow_provider_delix.decorators.delix_ocr.delix_ocr_documents_task",
            },
        ],
        "triggers": [
            {"integration-name": "Delix", "python-modules": ["airflow_provider_delix.triggers.delix"]}
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_delix.hooks.delix.DelixHook",
                "hook-name": "Delix",
                "connection-type": "delix",
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
                "conn-fields": CONN_FIELDS,
            }
        ],
    }
