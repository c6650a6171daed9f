"""Object-storage credentials from an Airflow connection, resolved where Airflow is: the operator.

Airflow's object-storage API turns a connection into an fsspec filesystem: the user part of
``ObjectStoragePath("s3://aws_s3@bucket/key")`` (or ``conn_id=``) names the connection, and the
provider of the scheme (``apache-airflow-providers-amazon[s3fs]`` for ``s3://``) builds the
filesystem from it -- for an ``aws`` connection, key and secret from login/password and an
S3-compatible server's ``endpoint_url`` from its extra. ``storage_conn_id`` does the same for
plain string URIs, so DAG files need neither secrets nor ``storage_options``.

The core stays free of Airflow: it receives :class:`~airflow_provider_delix.core.fspath.FsPath`
objects (filesystem, path, the URI as written) and opens nothing itself for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_delix.core.fspath import FsPath


def check_storage_arguments(storage_conn_id: str | None, storage_options: Mapping[str, Any] | None) -> None:
    """Both would configure the same filesystem; say so at parse time instead of ignoring one."""
    if storage_conn_id and storage_options:
        raise ValueError(
            "Give storage_conn_id or storage_options, not both: with a connection, the filesystem "
            "is built from the connection (put client settings such as endpoint_url in its extra)."
        )


def _is_remote(uri: str) -> bool:
    scheme, sep, _ = uri.partition("://")
    return bool(sep) and scheme.lower() not in ("file", "local")


def with_connection(value: Any, conn_id: str | None) -> Any:
    """String URIs in ``value`` (one, or a list) as :class:`FsPath` on the connection's filesystem.

    Local paths, ``file://`` URIs and ``ObjectStoragePath`` objects (which name their own
    connection, or use the environment's credentials) are left as they are.
    """
    if not conn_id:
        return value
    # The provider quietly falls back to anonymous access for an unknown connection id: a typo
    # would surface as "access denied" on the first file. Fail with the connection's name instead.
    from airflow.providers.common.compat.sdk import BaseHook

    BaseHook.get_connection(conn_id)
    return _with_fs(value, conn_id)


def _with_fs(value: Any, conn_id: str) -> Any:
    if isinstance(value, str):
        return _fs_path(value, conn_id) if _is_remote(value) else value
    if isinstance(value, list | tuple | set | frozenset):
        return [_with_fs(item, conn_id) for item in value]
    return value


def _fs_path(uri: str, conn_id: str) -> FsPath:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    # Airflow caches one filesystem per (scheme, connection): every path shares it.
    fs = ObjectStoragePath(uri, conn_id=conn_id).fs
    return FsPath(fs=fs, path=fs._strip_protocol(uri), uri=uri)
