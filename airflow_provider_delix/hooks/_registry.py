"""The key registry a ``delix`` connection names: extras ``registry_path`` and ``foreign_uploaders``.

Kept out of the hook module so the rule (which folder, which account, which filesystem) reads
in one place. The account's folder is a truncated sha256 of the API root and the key: tasks on
the same key find each other, the key itself is never written anywhere.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_provider_delix.api.auth import usable_api_key
from airflow_provider_delix.api.base_url import base_url_from_connection
from airflow_provider_delix.api.retry import connection_extra
from airflow_provider_delix.core.key_registry import KeyRegistry, account_fingerprint, default_registry_path

log = logging.getLogger(__name__)

REGISTRY_EXTRAS = ("registry_path", "foreign_uploaders")
# Executors that run every task on the scheduler's host: the default local registry sees them all.
_ONE_HOST = {"", "LocalExecutor", "SequentialExecutor", "DebugExecutor"}


def executor_spans_hosts() -> str | None:
    """The configured executor when it may run tasks on other hosts (Celery, Kubernetes, Edge...)."""
    try:
        from airflow.providers.common.compat.sdk import conf

        executor = str(conf.get("core", "executor", fallback="") or "")
    except Exception:
        return None
    names = [part.split(":")[-1].strip().rsplit(".", 1)[-1] for part in executor.split(",")]
    return None if all(name in _ONE_HOST for name in names) else executor


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
    # The key as it is sent (stripped): one account's tasks share one registry however the key
    # was pasted, else each would take the other's files for orphans.
    api_key = usable_api_key(connection.password, connection.conn_id)
    extras = connection.extra_dejson
    base_url = base_url_from_connection(connection.host, connection.schema, connection.port)
    path = connection_extra(extras, "registry_path")
    foreign = flag(connection_extra(extras, "foreign_uploaders"), "foreign_uploaders")
    if path is None:
        path = default_registry_path()
        executor = executor_spans_hosts()
        if executor is not None and not foreign:
            # Tasks on other hosts write to their own local registry: their files would look like
            # nobody's here. Report such files instead of deleting them until registry_path is shared.
            log.warning(
                "Connection '%s' has no registry_path and the executor (%s) may run tasks on other "
                "hosts: files no task on this host claims are reported, not deleted. Set registry_path "
                "to storage every worker shares (e.g. s3://bucket/delix-registry) to have them deleted.",
                connection.conn_id,
                executor,
            )
            foreign = True
    return KeyRegistry(
        registry_location(str(path)),
        account_fingerprint(base_url, api_key),
        foreign_uploaders=foreign,
    )
