"""``/_emulator/*``: introspection and control for tests and benchmarks. No auth: loopback tool.

* ``GET /_emulator/stats``: calls per endpoint and status, faults, storage now and its
  high-water marks, extracts, credits, and the charge ledger (``"<sha256>:<page>" -> times``).
* ``GET /_emulator/config``: the current settings (without the API key).
* ``POST /_emulator/config``: JSON of settings to change (any ``EmulatorConfig`` field but
  ``ocr``), plus ``add_credits`` to top up. Unknown names or bad values: 400, nothing changed.
* ``POST /_emulator/reset``: forget everything, back to the start settings and real time.
* ``POST /_emulator/clock`` ``{"advance_seconds": N}``: move the emulator clock forward.
* ``POST /_emulator/foreign_upload`` ``{"files": n}``: see :mod:`.account_events`.
* ``POST /_emulator/restart``: lose stored files and in-flight extracts (``emulator/restart.py``).
"""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_delix.emulator import account_events
from airflow_provider_delix.emulator.apierrors import ApiError
from airflow_provider_delix.emulator.app import EmulatorApp, Response
from airflow_provider_delix.emulator.restart import restart


def _body(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw) if raw else {}
    except (ValueError, UnicodeDecodeError):
        raise ValueError("body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


def handle_admin(app: EmulatorApp, method: str, path: str, raw: bytes) -> Response:  # noqa: PLR0911
    try:
        if method == "GET" and path == "/stats":
            return Response(200, app.snapshot())
        if path == "/config" and method == "GET":
            return Response(200, app.config.as_dict())
        if path == "/config" and method == "POST":
            return Response(200, app.configure(_body(raw)).as_dict())
        if path == "/reset" and method == "POST":
            app.reset()
            return Response(200, {"reset": True})
        if path == "/restart" and method == "POST":
            return Response(200, restart(app))
        if path == "/clock" and method == "POST":
            seconds = _body(raw).get("advance_seconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool):
                raise ValueError("advance_seconds must be a number")
            return Response(200, {"now": app.clock.advance(float(seconds))})
        if path == "/foreign_upload" and method == "POST":
            return Response(200, {"uuids": account_events.foreign_upload(app, _body(raw).get("files"))})
    except ApiError as exc:
        return Response(exc.status, exc.body)
    except ValueError as exc:
        return Response(400, {"message": str(exc)})
    return Response(404, {"message": "Not Found"})
