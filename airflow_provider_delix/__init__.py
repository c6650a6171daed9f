"""Apache Airflow provider for the Delix OCR API."""

from __future__ import annotations

__version__ = "0.1.0"
