"""Warehouses: where the source rows live and where dataset SQL runs."""

from __future__ import annotations

from llmline.errors import ConfigError
from llmline.warehouse.base import TableInfo, Warehouse
from llmline.warehouse.dialects import transpile

__all__ = ["TableInfo", "Warehouse", "connect", "transpile"]


def connect(url: str, *, read_only: bool = False) -> Warehouse:
    """Open the warehouse at ``url`` (``duckdb:///path``, ``postgresql://...``,
    ``bigquery://project``)."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "duckdb":
        from llmline.warehouse.duckdb_warehouse import DuckDBWarehouse

        return DuckDBWarehouse(url, read_only=read_only)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        from llmline.warehouse.postgres_warehouse import PostgresWarehouse

        return PostgresWarehouse(url)
    if scheme == "bigquery":
        from llmline.warehouse.bigquery_warehouse import BigQueryWarehouse

        return BigQueryWarehouse(url)
    raise ConfigError(
        f"unsupported warehouse URL {url!r} (use duckdb:///PATH, postgresql://..., bigquery://PROJECT)"
    )
