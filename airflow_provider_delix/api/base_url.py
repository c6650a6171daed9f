"""The API root a ``delix`` connection points at, from its host, schema and port.

Plain Python so the rule is tested without Airflow: host may be a full URL or a host name,
``schema`` is the protocol as for Airflow's HTTP connections (or the API path, which is what a
URI like ``delix://:KEY@api.delix.ir/v1`` puts there), and no host means the public API.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from airflow_provider_delix.api.models import DEFAULT_BASE_URL


def base_url_from_connection(host: str | None, schema: str | None, port: int | None) -> str:
    """The API root for a connection: host may be a full URL, or a host name with schema/port.

    ``schema`` follows HttpHook's convention (the protocol, ``http`` or ``https``); any other
    value is read as the path (a URI ``delix://:KEY@api.delix.ir/v1`` gives schema ``v1``).
    A URL without a path gets ``/v1``. No host at all means the public API.
    """
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    scheme, path = "https", ""
    if schema and schema.lower() in ("http", "https"):
        scheme = schema.lower()
    elif schema:
        path = "/" + schema.strip("/")
    url = host if "://" in host else f"{scheme}://{host}"
    parts = urlsplit(url)
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    full_path = (parts.path.rstrip("/") or path) or "/v1"
    return urlunsplit((parts.scheme, netloc, full_path.rstrip("/"), "", ""))
