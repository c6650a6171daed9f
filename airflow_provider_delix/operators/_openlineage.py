"""OpenLineage for the extraction operators: the archive in, the table out, what the run did.

Why a module of its own (as the dbt Cloud provider does): OpenLineage is optional. The
operators import this module only inside their ``get_openlineage_facets_on_*`` methods, which
only the OpenLineage listener calls, so parsing a DAG or importing an operator never imports
``openlineage`` and the provider works without ``apache-airflow-providers-openlineage``.

Dataset names follow the OpenLineage naming spec, and agree with what Airflow itself emits for
an ``Asset`` of the same URI (so the table matches the outlet the operator declares): a local
path is namespace ``file`` with the absolute path as name; ``s3://bucket/key`` is namespace
``s3://bucket`` with ``key`` as name; other URIs ``scheme://authority`` and the path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.openlineage.extractors import OperatorLineage
from attrs import define
from openlineage.client.event_v2 import Dataset, InputDataset, OutputDataset
from openlineage.client.facet_v2 import (
    OutputDatasetFacet,
    RunFacet,
    output_statistics_output_dataset,
    schema_dataset,
)

from airflow_provider_delix.core.table import SCHEMA, SCHEMA_VERSION, source_text
from airflow_provider_delix.operators._extraction import output_uri

if TYPE_CHECKING:
    from airflow_provider_delix.operators._extraction import BaseExtractionOperator

# A list of thousands of files would make an event (and a lineage graph) of thousands of nodes;
# past this many, the rest are counted in the run facet instead (``inputsOmitted``).
MAX_INPUT_DATASETS = 20

RUN_FACET_KEY = "delix_extraction"

_MAGIC = re.compile(r"[*?\[]")  # the glob characters of core.inputs
_LOCAL_SCHEMES = frozenset({"", "file", "local"})
_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3", "gcs": "gs"}


@define
class DelixExtractionRunFacet(RunFacet):
    """What one try did: rows written by status, pages and credits (from the XCom manifest).

    Without a manifest (START, and FAIL: ``execute`` keeps the manifest of a try that returned)
    only what the operator was asked to do is known: ``kind``, ``engine`` and ``language``.
    """

    # OpenLineage facets name their fields in camelCase.
    kind: str
    engine: str
    language: str
    schemaVersion: int
    rows: dict[str, int] | None = None
    pagesTotal: int | None = None
    pagesResumed: int | None = None
    pagesInDoubt: int | None = None
    creditsAtRisk: int | None = None
    creditsCharged: int | None = None
    creditsRefunded: int | None = None
    inputsOmitted: int = 0

    # Counts, not secrets: keep Airflow's secrets masker away from them.
    _additional_skip_redact = [  # noqa: RUF012 -- the attrs/OpenLineage convention
        "kind",
        "engine",
        "language",
        "schemaVersion",
        "rows",
        "pagesTotal",
        "pagesResumed",
        "pagesInDoubt",
        "creditsAtRisk",
        "creditsCharged",
        "creditsRefunded",
        "inputsOmitted",
    ]


def fixed_prefix(path: str) -> str:
    """The part of a glob before its first wildcard component (a folder): what a glob reads from."""
    parts = path.split("/")
    literal = 0
    while literal < len(parts) and not _MAGIC.search(parts[literal]):
        literal += 1
    if literal == len(parts):
        return path
    return "/".join(parts[:literal]) or ("/" if path.startswith("/") else ".")


def _local(path: str) -> tuple[str, str]:
    return "file", os.path.abspath(fixed_prefix(path)).rstrip("/") or "/"


def naming(location: str) -> tuple[str, str] | None:
    """OpenLineage ``(namespace, name)`` of a path or URI (a glob stands for its fixed prefix).

    None when no dataset can be named (a wildcard in the bucket itself).
    """
    if "://" not in location:
        return _local(location)
    parts = urlsplit(location)
    scheme = _SCHEME_ALIASES.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme in _LOCAL_SCHEMES:
        return _local(parts.netloc + parts.path if parts.netloc not in ("", "localhost") else parts.path)
    authority = parts.netloc.rsplit("@", 1)[-1]  # never a user or an Airflow conn id in a namespace
    if not authority or _MAGIC.search(authority):
        return None
    name = fixed_prefix(parts.path).strip("/")
    return f"{scheme}://{authority}", name or "/"


def _location(item: Any) -> str | None:
    """A path or URI for one item of ``images``/``documents`` (see core.inputs)."""
    if hasattr(item, "fs") and hasattr(item, "path") and not isinstance(item, str | bytes):
        # ObjectStoragePath: its protocol and bare path, never str() (which may carry a conn id).
        uri = getattr(item, "uri", None)  # a location that keeps what the user wrote
        if isinstance(uri, str):
            return uri
        protocol = getattr(item, "protocol", "") or ""
        if isinstance(protocol, tuple | list):
            protocol = protocol[0] if protocol else ""
        path = str(item.path)
        return path if protocol in _LOCAL_SCHEMES else f"{protocol}://{path.lstrip('/')}"
    if isinstance(item, bytes | os.PathLike):
        return source_text(os.fsdecode(os.fspath(item)))
    if isinstance(item, str):
        return item
    return None


def _items(inputs: Any) -> list[Any]:
    if inputs is None:
        return []
    if isinstance(inputs, str | bytes | os.PathLike) or hasattr(inputs, "fs"):
        return [inputs]
    if isinstance(inputs, Iterable):
        return list(inputs)
    return []


def input_namings(inputs: Any) -> tuple[list[tuple[str, str]], int]:
    """One ``(namespace, name)`` per input item, de-duplicated and sorted (stable across tries).

    Returns the first :data:`MAX_INPUT_DATASETS` and how many more there were.
    """
    found: dict[tuple[str, str], None] = {}
    for item in _items(inputs):
        location = _location(item)
        named = naming(location) if location else None
        if named is not None:
            found.setdefault(named, None)
    ordered = sorted(found)
    return ordered[:MAX_INPUT_DATASETS], max(0, len(ordered) - MAX_INPUT_DATASETS)


def table_schema_facet() -> schema_dataset.SchemaDatasetFacet:
    """The table's columns, from the Arrow schema every part file is written with."""
    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(
                name=field.name,
                type=str(field.type),
                description=(field.metadata or {}).get(b"description", b"").decode("utf-8") or None,
                ordinal_position=position,
            )
            for position, field in enumerate(SCHEMA, start=1)
        ]
    )


def run_facet(
    operator: BaseExtractionOperator, manifest: Mapping[str, Any] | None, inputs_omitted: int = 0
) -> DelixExtractionRunFacet:
    options = operator.options
    facet = DelixExtractionRunFacet(
        kind=options.kind,
        engine=options.engine,
        language=options.language,
        schemaVersion=SCHEMA_VERSION,
        inputsOmitted=inputs_omitted,
    )
    if manifest:
        facet.rows = {str(k): int(v) for k, v in (manifest.get("counts") or {}).items()}
        facet.pagesTotal = int(manifest.get("pages_total", 0))
        facet.pagesResumed = int(manifest.get("pages_resumed", 0))
        facet.pagesInDoubt = int(manifest.get("pages_in_doubt", 0))
        facet.creditsAtRisk = int(manifest.get("credits_at_risk", 0))
        facet.creditsCharged = int(manifest.get("credits_charged", 0))
        facet.creditsRefunded = int(manifest.get("credits_refunded", 0))
    return facet


def build_lineage(
    operator: BaseExtractionOperator, manifest: Mapping[str, Any] | None = None
) -> OperatorLineage[Dataset, RunFacet]:
    """The ``OperatorLineage`` of one try: archive locations in, the table out, the run's figures.

    ``manifest`` is what ``execute`` returned (None on START): with it the table gets an
    ``outputStatistics`` facet (rows written by this try) and the run facet its counts.
    """
    namings, omitted = input_namings(operator.inputs)
    inputs: list[Dataset] = [InputDataset(namespace=namespace, name=name) for namespace, name in namings]
    outputs: list[Dataset] = []
    table = naming(output_uri(operator.output_path))
    if table is not None:
        output_facets: dict[str, OutputDatasetFacet] = {}
        if manifest:
            rows = sum(int(v) for v in (manifest.get("counts") or {}).values())
            output_facets["outputStatistics"] = (
                output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=rows)
            )
        outputs.append(
            OutputDataset(
                namespace=table[0],
                name=table[1],
                facets={"schema": table_schema_facet()},
                outputFacets=output_facets,
            )
        )
    return OperatorLineage(
        inputs=inputs,
        outputs=outputs,
        run_facets={RUN_FACET_KEY: run_facet(operator, manifest, omitted)},
    )
