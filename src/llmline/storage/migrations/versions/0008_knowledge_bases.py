"""knowledge_bases: RAG knowledge bases and their content-addressed versions

Revision ID: 0008_knowledge_bases
Revises: 0007_request_log
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_knowledge_bases"
down_revision = "0007_request_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "knowledge_bases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "knowledge_base_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "knowledge_base_id",
            sa.Integer,
            sa.ForeignKey("knowledge_bases.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("embedding_model", sa.String(200), nullable=False),
        sa.Column("embedding_dim", sa.Integer, nullable=False),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("manifest", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("knowledge_base_id", "version", name="uq_kb_version"),
        sa.UniqueConstraint("knowledge_base_id", "content_hash", name="uq_kb_content"),
    )


def downgrade() -> None:
    op.drop_table("knowledge_base_versions")
    op.drop_table("knowledge_bases")
