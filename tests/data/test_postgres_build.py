"""The data stage with PostgreSQL as both metadata store and warehouse: the
same BigQuery-dialect SQL, the same bytes as on the embedded defaults."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import yaml

from llmline import data
from llmline.testing.synthetic import generate_stackoverflow
from llmline.testing.workspace import synthetic_workspace
from llmline.workspace import default_config_text, init_workspace

pytestmark = pytest.mark.postgres


def test_build_on_postgres_matches_duckdb(postgres_url: str, tmp_path: Path) -> None:
    generated = tmp_path / "generated.duckdb"
    generate_stackoverflow(generated, 300)
    with duckdb.connect(str(generated), read_only=True) as con:
        tables = {
            name: con.sql(f"SELECT * FROM {name}").to_arrow_table()
            for name in ("posts_questions", "posts_answers")
        }

    root = tmp_path / "pg"
    root.mkdir()
    config = yaml.safe_load(default_config_text())
    config.update(metadata_url=postgres_url, warehouse_url=postgres_url)
    (root / "llmline.yaml").write_text(yaml.safe_dump(config))
    ws = init_workspace(root, load_sample_data=False)
    assert ws.metadata.engine.dialect.name == "postgresql"
    with ws.warehouse() as wh:
        assert wh.dialect == "postgres"
        wh.upsert(tables)
    on_postgres = data.build("python-faq", workspace=ws)
    assert "~" in on_postgres.manifest["sql"]["executed"]  # REGEXP_CONTAINS, transpiled
    assert [v.ref for v in data.list(workspace=ws)] == [on_postgres.ref]
    assert data.build("python-faq", workspace=ws).status == "unchanged"
    data.verify(on_postgres.ref, workspace=ws)
    ws.close()

    embedded = synthetic_workspace(tmp_path / "embedded", 300)
    on_duckdb = data.build("python-faq", workspace=embedded)
    embedded.close()
    assert on_postgres.content_hash == on_duckdb.content_hash
    assert on_postgres.report.splits == on_duckdb.report.splits
