"""evaluations: model scores per dataset split

Revision ID: 0003_evaluations
Revises: 0002_models
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_evaluations"
down_revision = "0002_models"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_ref", sa.String(500), nullable=False),
        sa.Column("dataset_ref", sa.String(500), nullable=False),
        sa.Column("split", sa.String(64), nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("samples", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_evaluations_model_ref", "evaluations", ["model_ref"])


def downgrade() -> None:
    op.drop_index("ix_evaluations_model_ref", table_name="evaluations")
    op.drop_table("evaluations")
