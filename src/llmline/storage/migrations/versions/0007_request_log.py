"""request log; key budget period and stream limit

Revision ID: 0007_request_log
Revises: 0006_api_keys
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_request_log"
down_revision = "0006_api_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("budget_period", sa.String(8), nullable=True))
        batch.add_column(sa.Column("max_streams", sa.Integer, nullable=True))
    op.create_table(
        "requests",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("user", sa.String(200), nullable=True),
        sa.Column("deployment", sa.String(100), nullable=True),
        sa.Column("model_version", sa.String(300), nullable=True),
        sa.Column("route_reason", sa.String(300), nullable=True),
        sa.Column("prompt_version", sa.String(200), nullable=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("finish_reason", sa.String(32), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("cache", sa.String(16), nullable=True),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("ttft_ms", sa.Float, nullable=True),
        sa.Column("input_text", sa.Text, nullable=True),
        sa.Column("output_text", sa.Text, nullable=True),
        sa.Column("safety", sa.JSON, nullable=True),
    )
    op.create_index("ix_requests_created_at", "requests", ["created_at"])
    op.create_index("ix_requests_key_created", "requests", ["key_id", "created_at"])
    op.create_index("ix_requests_deployment_created", "requests", ["deployment", "created_at"])


def downgrade() -> None:
    op.drop_table("requests")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("max_streams")
        batch.drop_column("budget_period")
