"""Every table of the metadata store, registered on one ``Base.metadata``.

Table classes live with the stage that owns them; importing this module
imports them all, which is what Alembic's environment and the schema test
need to see the whole schema.
"""

from __future__ import annotations

from llmline.storage import (
    deployment_tables,
    eval_tables,
    feedback_tables,
    kb_tables,
    key_tables,
    model_tables,
    models,
    pipeline_tables,
    request_tables,
)
from llmline.storage.models import Base

__all__ = ["Base", "metadata"]

metadata = Base.metadata
_REGISTERED = (
    models,
    model_tables,
    eval_tables,
    pipeline_tables,
    deployment_tables,
    key_tables,
    request_tables,
    kb_tables,
    feedback_tables,
)
