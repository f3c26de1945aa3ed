"""The metadata store on SQLite and on a real PostgreSQL server: migrations,
ORM models against the migrated schema, row round trips, lineage."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, event, func, inspect, select
from sqlalchemy.exc import IntegrityError

from llmline.storage.db import MetadataStore
from llmline.storage.lineage import ArtifactRef, add_edge, walk
from llmline.storage.models import (
    Dataset,
    DatasetVersion,
    LineageEdge,
    PromptAlias,
    PromptTemplate,
    PromptVersion,
)
from llmline.storage.tables import metadata

TABLES = {
    "datasets",
    "dataset_versions",
    "prompt_templates",
    "prompt_versions",
    "prompt_aliases",
    "lineage_edges",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """The same test against a SQLite file and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[MetadataStore]:
    store = MetadataStore(db_url)
    yield store
    store.dispose()


# -- migrations ---------------------------------------------------------------------
def test_fresh_database_reaches_head(store: MetadataStore) -> None:
    head = MetadataStore.head_revision()
    assert head is not None
    assert store.current_revision() == head
    assert set(inspect(store.engine).get_table_names()) >= TABLES


def test_second_open_is_a_no_op(db_url: str) -> None:
    MetadataStore(db_url).dispose()
    again = MetadataStore(db_url, migrate=False)
    statements: list[str] = []
    event.listen(
        again.engine,
        "before_cursor_execute",
        lambda _conn, _cur, statement, *_: statements.append(statement),
    )
    again.upgrade()
    again.dispose()
    # Only the version lookup runs: no DDL, no write to alembic_version.
    assert any("alembic_version" in s for s in statements)
    writes = ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE")
    assert not [s for s in statements if s.lstrip().upper().startswith(writes)]


def test_models_match_the_migrated_schema(store: MetadataStore) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(context, metadata)
    assert diffs == []


def test_unreachable_database_is_a_config_error() -> None:
    from llmline.errors import ConfigError

    # Port 1 on loopback: nothing listens there, so the connection is refused.
    with pytest.raises(ConfigError, match="cannot open metadata store"):
        MetadataStore("postgresql://nobody@127.0.0.1:1/none")


# -- rows ---------------------------------------------------------------------------
def test_rows_round_trip(store: MetadataStore) -> None:
    manifest = {"rows": 3, "columns": ["question", "answer"], "nested": {"a": [1, 2.5, None]}}
    with store.session() as session:
        dataset = Dataset(name="python-faq", description="FAQ pairs")
        dataset.versions.append(
            DatasetVersion(version="v1", content_hash="a" * 64, uri="file:///x", manifest=manifest)
        )
        template = PromptTemplate(name="qa")
        v1 = PromptVersion(
            version=1, text="Q: {question}", variables=["question"], content_hash="b" * 64
        )
        template.versions.append(v1)
        template.aliases.append(PromptAlias(alias="prod", target=v1))
        session.add_all([dataset, template])
        src, dst = ArtifactRef("dataset", "python-faq@v1"), ArtifactRef("prompt", "qa@1")
        add_edge(session, src, dst, "evaluated_with", {"score": 0.5})

    with store.session() as session:
        got = session.scalars(select(Dataset).where(Dataset.name == "python-faq")).one()
        assert got.description == "FAQ pairs"
        assert got.created_at is not None
        [version] = got.versions
        assert (version.version, version.manifest) == ("v1", manifest)
        template = session.scalars(select(PromptTemplate)).one()
        assert [v.variables for v in template.versions] == [["question"]]
        assert template.versions[0].description == ""
        [alias] = template.aliases
        assert (alias.alias, alias.target.text) == ("prod", "Q: {question}")
        edge = session.scalars(select(LineageEdge)).one()
        assert (edge.src_ref, edge.dst_ref) == ("python-faq@v1", "qa@1")
        assert edge.attributes == {"score": 0.5}


def test_unique_constraints_and_cascades(store: MetadataStore) -> None:
    with store.session() as session:
        dataset = Dataset(name="d")
        dataset.versions.append(
            DatasetVersion(version="v1", content_hash="h", uri="u", manifest={})
        )
        session.add(dataset)
    with pytest.raises(IntegrityError), store.session() as session:
        session.add(Dataset(name="d"))
    with pytest.raises(IntegrityError), store.session() as session:
        ds = session.scalars(select(Dataset)).one()
        # Same content under another version name: uq_dataset_content.
        dup = DatasetVersion(dataset_id=ds.id, version="v2", content_hash="h", uri="u", manifest={})
        session.add(dup)
    # ON DELETE CASCADE is enforced by the database (SQLite needs foreign_keys=ON).
    with store.session() as session:
        session.execute(delete(Dataset))
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(DatasetVersion)) == 0


def test_orm_delete_of_a_dataset_removes_its_versions(store: MetadataStore) -> None:
    with store.session() as session:
        dataset = Dataset(name="d")
        dataset.versions.append(
            DatasetVersion(version="v1", content_hash="h", uri="u", manifest={})
        )
        session.add(dataset)
    with store.session() as session:
        session.delete(session.scalars(select(Dataset)).one())
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(DatasetVersion)) == 0


# -- lineage ------------------------------------------------------------------------
def _ref(text: str) -> ArtifactRef:
    return ArtifactRef.parse(text)


def test_add_edge_is_idempotent(store: MetadataStore) -> None:
    src, dst = _ref("table:posts_questions"), _ref("dataset:faq@v1")
    with store.session() as session:
        add_edge(session, src, dst, "read_by")
        add_edge(session, src, dst, "read_by")  # same unit of work (pending row)
    with store.session() as session:
        add_edge(session, src, dst, "read_by", {"ignored": True})  # a later one
        add_edge(session, src, dst, "sampled_by")  # another relation is another edge
    with store.session() as session:
        rows = session.scalars(select(LineageEdge).order_by(LineageEdge.id)).all()
    assert [(r.relation, r.attributes) for r in rows] == [("read_by", {}), ("sampled_by", {})]


def test_walk_follows_chains_both_ways(store: MetadataStore) -> None:
    chain = [
        ("table:posts_questions", "dataset:faq@v1", "read_by"),
        ("table:posts_answers", "dataset:faq@v1", "read_by"),
        ("dataset:faq@v1", "run:r1", "trained"),
        ("prompt:qa@1", "run:r1", "formatted"),
        ("run:r1", "model:m1", "produced"),
        ("model:m1", "deployment:prod", "served_by"),
        ("model:m1", "run:r1", "cycle"),  # a cycle must not loop forever
        ("table:unrelated", "dataset:other@v1", "read_by"),
    ]
    with store.session() as session:
        for src, dst, relation in chain:
            add_edge(session, _ref(src), _ref(dst), relation)
    with store.session() as session:
        graph = walk(session, _ref("run:r1"))
        shallow = walk(session, _ref("run:r1"), max_depth=1)

    def pairs(edges: list[Any]) -> set[tuple[str, str]]:
        return {(str(e.src), str(e.dst)) for e in edges}

    assert len(pairs(graph.upstream)) == len(graph.upstream)  # each edge once
    assert pairs(graph.upstream) == {
        ("dataset:faq@v1", "run:r1"),
        ("prompt:qa@1", "run:r1"),
        ("model:m1", "run:r1"),
        ("table:posts_questions", "dataset:faq@v1"),
        ("table:posts_answers", "dataset:faq@v1"),
        ("run:r1", "model:m1"),
    }
    assert pairs(graph.downstream) == {
        ("run:r1", "model:m1"),
        ("model:m1", "deployment:prod"),
        ("model:m1", "run:r1"),
    }
    direct = {("dataset:faq@v1", "run:r1"), ("prompt:qa@1", "run:r1"), ("model:m1", "run:r1")}
    assert pairs(shallow.upstream) == direct
    assert graph.to_dict()["artifact"] == "run:r1"
