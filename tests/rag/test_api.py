"""The public API of ``llmline.rag``: pinned names that stay functions and
classes even after every submodule is imported (a submodule named like a
function would replace it on the package)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import llmline.rag

PUBLIC = [
    "BUILTIN_CORPORA", "Encoder", "Hit", "IngestResult", "KnowledgeBase", "KnowledgeBaseInfo",
    "MiniLMEncoder", "QueryTruncatedWarning", "SkippedFile", "ingest", "list_knowledge_bases",
    "open_knowledge_base",
]  # fmt: skip


def test_all_is_pinned_and_survives_importing_every_submodule() -> None:
    for info in pkgutil.iter_modules(llmline.rag.__path__):
        module = importlib.import_module(f"llmline.rag.{info.name}")
        assert isinstance(module.__all__, list), info.name
    assert sorted(llmline.rag.__all__) == sorted(PUBLIC)
    from llmline.rag import Hit, KnowledgeBase, ingest, open_knowledge_base

    assert inspect.isfunction(ingest) and inspect.isfunction(open_knowledge_base)
    assert inspect.isclass(KnowledgeBase) and inspect.isclass(Hit)
    for name in PUBLIC:
        assert getattr(llmline.rag, name) is not None
        assert not inspect.ismodule(getattr(llmline.rag, name)), name
