"""Knowledge bases for retrieval-augmented generation.

The Python API behind ``llmline rag ...``::

    from llmline.rag import ingest, open_knowledge_base

    result = ingest("python-docs", builtin="pydoc-topics")
    with open_knowledge_base("python-docs") as kb:
        for hit in kb.search("how does the with statement work", k=3):
            print(hit.score, hit.title, hit.text[:80])

Each function takes an optional :class:`~llmline.workspace.Workspace`
(default: found from the current directory, as the CLI does).  FAISS,
bm25s and the embedding model load on first use, not on import.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmline.rag.sources import BUILTIN_CORPORA

if TYPE_CHECKING:
    from llmline.rag.catalog import KnowledgeBaseInfo
    from llmline.rag.encoder import Encoder, MiniLMEncoder
    from llmline.rag.ingestion import IngestResult, ProgressCallback
    from llmline.rag.kb import Hit, KnowledgeBase, QueryTruncatedWarning
    from llmline.rag.sources import SkippedFile
    from llmline.workspace import Workspace

__all__ = [
    "BUILTIN_CORPORA",
    "Encoder",
    "Hit",
    "IngestResult",
    "KnowledgeBase",
    "KnowledgeBaseInfo",
    "MiniLMEncoder",
    "QueryTruncatedWarning",
    "SkippedFile",
    "ingest",
    "list_knowledge_bases",
    "open_knowledge_base",
]

_LAZY = {
    "Encoder": "llmline.rag.encoder",
    "MiniLMEncoder": "llmline.rag.encoder",
    "Hit": "llmline.rag.kb",
    "KnowledgeBase": "llmline.rag.kb",
    "QueryTruncatedWarning": "llmline.rag.kb",
    "IngestResult": "llmline.rag.ingestion",
    "KnowledgeBaseInfo": "llmline.rag.catalog",
    "SkippedFile": "llmline.rag.sources",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'llmline.rag' has no attribute {name!r}")


def _workspace(workspace: Workspace | None) -> Workspace:
    from llmline.workspace import find_workspace

    return workspace or find_workspace()


def ingest(
    name: str,
    paths: Sequence[str | Path] = (),
    *,
    builtin: str | Sequence[str] | None = None,
    chunk_size: int = 512,
    overlap: int = 64,
    workspace: Workspace | None = None,
    encoder: Encoder | None = None,
    on_progress: ProgressCallback | None = None,
) -> IngestResult:
    """Ingest files and folders (text, Markdown, reST, HTML, PDF) and built-in
    corpora (``builtin="pydoc-topics"``) into knowledge base ``name``.

    ``chunk_size`` and ``overlap`` count word pieces of the embedding model's
    tokenizer.  An unchanged corpus gives back the existing version.
    """
    from llmline.rag.chunking import ChunkingOptions
    from llmline.rag.ingestion import ingest_knowledge_base

    corpora = [builtin] if isinstance(builtin, str) else list(builtin or ())
    return ingest_knowledge_base(
        _workspace(workspace),
        name,
        paths,
        builtins=corpora,
        options=ChunkingOptions(chunk_size, overlap),
        encoder=encoder,
        on_progress=on_progress,
    )


def open_knowledge_base(
    ref: str, *, workspace: Workspace | None = None, encoder: Encoder | None = None
) -> KnowledgeBase:
    """``NAME``, ``NAME@latest`` or ``NAME@VERSION``, ready to search.

    Raises ConfigError when ``encoder`` (default: the shipped MiniLM) is not
    the model the knowledge base was built with."""
    from llmline.rag.kb import open_version

    return open_version(_workspace(workspace), ref, encoder)


def list_knowledge_bases(
    name: str | None = None, *, workspace: Workspace | None = None
) -> builtins.list[KnowledgeBaseInfo]:
    """Every knowledge base version (of ``name``, or of all), oldest first."""
    from llmline.rag.catalog import list_versions

    return list_versions(_workspace(workspace), name)
