"""initial: datasets, prompt templates, lineage edges

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def _created_at() -> sa.Column[object]:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False),
        _created_at(),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "dataset_id",
            sa.Integer,
            sa.ForeignKey("datasets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("manifest", sa.JSON, nullable=False),
        _created_at(),
        sa.UniqueConstraint("dataset_id", "version", name="uq_dataset_version"),
        sa.UniqueConstraint("dataset_id", "content_hash", name="uq_dataset_content"),
    )
    op.create_table(
        "prompt_templates",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        _created_at(),
    )
    op.create_table(
        "prompt_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "template_id",
            sa.Integer,
            sa.ForeignKey("prompt_templates.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("variables", sa.JSON, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        _created_at(),
        sa.UniqueConstraint("template_id", "version", name="uq_prompt_version"),
    )
    op.create_table(
        "prompt_aliases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "template_id",
            sa.Integer,
            sa.ForeignKey("prompt_templates.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("alias", sa.String(100), nullable=False),
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("prompt_versions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("template_id", "alias", name="uq_prompt_alias"),
    )
    op.create_table(
        "lineage_edges",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("src_kind", sa.String(50), nullable=False, index=True),
        sa.Column("src_ref", sa.String(500), nullable=False, index=True),
        sa.Column("dst_kind", sa.String(50), nullable=False, index=True),
        sa.Column("dst_ref", sa.String(500), nullable=False, index=True),
        sa.Column("relation", sa.String(50), nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        _created_at(),
        sa.UniqueConstraint(
            "src_kind", "src_ref", "dst_kind", "dst_ref", "relation", name="uq_lineage_edge"
        ),
    )


def downgrade() -> None:
    for table in (
        "lineage_edges",
        "prompt_aliases",
        "prompt_versions",
        "prompt_templates",
        "dataset_versions",
        "datasets",
    ):
        op.drop_table(table)
