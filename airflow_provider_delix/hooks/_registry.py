"""The key registry a ``delix`` connection names: extras ``registry_path`` and ``foreign_uploaders``.

Kept out of the hook module so the rule (which folder, which account, which filesystem) reads
in one place. The account's folder is a truncated sha256 of the API root and the key: tasks on
the same key find each other, the key itself is never written anywhere.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_delix.api.base_url import base_url_from_connection
from airflow_provider_delix.api.errors import DelixAuthError
from airflow_provider_delix.api.retry import connection_extra
from airflow_provider_delix.core.key_registry import KeyRegistry, account_fingerprint, default_registry_path

REGISTRY_EXTRAS = ("registry_path", "foreign_uploaders")


def flag(value: Any, name: str) -> bool:
    """A boolean extra as JSON (true/false) or as the text a form or URI gives."""
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"Connection extra {name!r} must be true or false, got {value!r}.")


def registry_location(path: str) -> Any:
    """A local path or fsspec URL; ``s3://conn_id@bucket/prefix`` takes credentials from that
    Airflow connection, like ``ObjectStoragePath`` (plain URLs use the environment's)."""
    scheme, sep, rest = path.partition("://")
    if sep and scheme.lower() not in ("file", "local") and "@" in rest.split("/", 1)[0]:
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        from airflow_provider_delix.core.fspath import FsPath

        located = ObjectStoragePath(path)
        return FsPath(fs=located.fs, path=str(located.path), uri=path)
    return path


def registry_for_connection(connection: Any) -> KeyRegistry:
    """The registry of the account a connection uses."""
    if not connection.password:
        raise DelixAuthError(
            f"Connection '{connection.conn_id}' has no API key: put the Delix API key in its password field.",
            conn_id=connection.conn_id,
        )
    extras = connection.extra_dejson
    base_url = base_url_from_connection(connection.host, connection.schema, connection.port)
    path = connection_extra(extras, "registry_path") or default_registry_path()
    return KeyRegistry(
        registry_location(str(path)),
        account_fingerprint(base_url, connection.password),
        foreign_uploaders=flag(connection_extra(extras, "foreign_uploaders"), "foreign_uploaders"),
    )
