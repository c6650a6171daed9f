"""The connection in its usual forms: JSON and URI env vars, host as URL or name, defaults."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from airflow_provider_delix.api.base_url import base_url_from_connection
from airflow_provider_delix.hooks.delix import DelixHook


@pytest.mark.parametrize(
    ("host", "schema", "port", "expected"),
    [
        (None, None, None, "https://api.delix.ir/v1"),
        ("api.delix.ir", None, None, "https://api.delix.ir/v1"),
        ("api.delix.ir", "v1", None, "https://api.delix.ir/v1"),
        ("127.0.0.1", "http", 8080, "http://127.0.0.1:8080/v1"),
        ("http://127.0.0.1:8080/v1", None, None, "http://127.0.0.1:8080/v1"),
        ("http://127.0.0.1/v1/", None, 8081, "http://127.0.0.1:8081/v1"),
        ("https://proxy.example/delix/v1", None, None, "https://proxy.example/delix/v1"),
    ],
)
def test_base_url(host: str | None, schema: str | None, port: int | None, expected: str) -> None:
    assert base_url_from_connection(host, schema, port) == expected


def test_uri_env_var_form_reaches_the_emulator(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    port = emulator.base_url.split(":")[2].split("/")[0]
    uri = f"delix://:{quote(emulator.api_key, safe='')}@127.0.0.1:{port}/http"
    monkeypatch.setenv("AIRFLOW_CONN_DELIX_URI", uri)
    hook = DelixHook("delix_uri")
    assert hook.list_files() == []
    assert hook.base_url == emulator.base_url


def test_default_connection_id_and_attributes() -> None:
    assert DelixHook.default_conn_name == "delix_default"
    assert DelixHook.conn_name_attr == "delix_conn_id"
    assert DelixHook.conn_type == "delix" and DelixHook.hook_name == "Delix"
    assert DelixHook().delix_conn_id == "delix_default"
