"""``kind: rag`` deployments: retrieve, ground the prompt, cite the sources.

Before routing, :func:`ground` searches the deployment's knowledge base
for the question, keeps the chunks that pass ``min_score`` and fit in
``max_context_tokens``, and replaces the question the model sees with the
grounded prompt (a versioned template of the prompt registry, by default
``rag-grounded``, registered on first use).  With ``grounded_only`` and
nothing relevant enough, it answers the refusal itself and the model is
not called.  After generation, :func:`citations` maps the answer's ``[n]``
markers (else its sentences' word overlap) to the sources, as
``citation_metadata``.

The knowledge base is opened once per live deployment, on its first
request, in a worker thread (search embeds the question with MiniLM).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from llmline.errors import LLMLineError
from llmline.gateway.errors import NotReadyError
from llmline.gateway.protocol.extensions import Citation
from llmline.rag import grounding as g

if TYPE_CHECKING:
    from llmline.gateway.deployments.spec import DeploymentSpec, RagPolicy
    from llmline.gateway.serving import Answer, Prepared
    from llmline.prompts.template import Template
    from llmline.rag.kb import Hit, KnowledgeBase
    from llmline.workspace import Workspace

__all__ = ["Grounding", "RagRuntime", "build_rag_runtime", "citations", "ground"]

log = logging.getLogger("llmline.gateway")


@dataclass
class Grounding:
    """What one request was grounded in."""

    knowledge_base: str
    retrieved: int
    sources: list[Hit] = field(default_factory=list)
    refused: bool = False

    def info(self) -> dict[str, Any]:
        """The ``llmline.grounding`` object of the response."""
        return {
            "knowledge_base": self.knowledge_base,
            "retrieved": self.retrieved,
            "used": len(self.sources),
            "refused": self.refused,
            "sources": [
                {"n": n, "chunk_id": h.chunk_id, "uri": h.source, "title": h.title}
                for n, h in enumerate(self.sources, start=1)
            ],
        }


class RagRuntime:
    """A deployment's knowledge base (opened lazily, once) and grounded template."""

    def __init__(
        self, workspace: Workspace, policy: RagPolicy, prompt_ref: str, template: Template
    ) -> None:
        self.workspace = workspace
        self.policy = policy
        self.prompt_ref = prompt_ref
        self.template = template
        self._kb: KnowledgeBase | None = None
        self._lock = threading.Lock()

    def knowledge_base(self) -> KnowledgeBase:
        with self._lock:
            if self._kb is None:
                from llmline.rag import open_knowledge_base

                try:
                    self._kb = open_knowledge_base(
                        self.policy.knowledge_base, workspace=self.workspace
                    )
                except LLMLineError as exc:
                    raise NotReadyError(
                        f"knowledge base {self.policy.knowledge_base} cannot be opened: {exc}"
                    ) from None
            return self._kb

    def retrieve(self, question: str) -> tuple[str, list[Hit], list[Hit]]:
        """``(knowledge base ref, every hit retrieved, the hits put in the prompt)``."""
        kb = self.knowledge_base()
        policy = self.policy
        hits = kb.search(question, policy.top_k, policy.mode, mmr=policy.mmr, rerank=policy.rerank)
        scores = _scores(kb, question, hits) if policy.min_score is not None else None
        kept = g.select_context(
            hits, policy.max_context_tokens, min_score=policy.min_score, scores=scores
        )
        return kb.ref, hits, kept

    def prompt(self, question: str, sources: list[Hit]) -> str:
        values = {"context": g.format_context(sources), "question": question}
        return self.template.render({v: values.get(v, "") for v in self.template.variables})


def _scores(kb: KnowledgeBase, question: str, hits: list[Hit]) -> list[float | None]:
    """The dense cosine of each hit; computed for those a BM25 ranking alone found."""
    scores = [g.grounding_score(h) for h in hits]
    missing = [i for i, s in enumerate(scores) if s is None]
    if missing:
        query = kb.query_vector(question).reshape(-1)
        vectors = kb.encoder.embed([hits[i].text for i in missing])
        for i, vector in zip(missing, vectors, strict=True):
            scores[i] = float(vector @ query)
    return scores


def build_rag_runtime(workspace: Workspace | None, spec: DeploymentSpec) -> RagRuntime | None:
    """The runtime of a ``kind: rag`` deployment (None for any other kind).

    The grounded template is resolved to its version now, so every answer
    of this revision names the version it was built with.
    """
    if spec.rag is None or workspace is None:
        return None
    from llmline.prompts import PromptRegistry

    registry = PromptRegistry(workspace.metadata)
    ref = spec.rag.prompt or g.DEFAULT_PROMPT_NAME
    if ref == g.DEFAULT_PROMPT_NAME and not any(
        p.name == ref for p in registry.list()
    ):  # the shipped default, registered on first use
        registry.create(
            ref, g.DEFAULT_PROMPT_TEXT, description="Grounded answer with [n] citations"
        )
    info = registry.get(ref)
    return RagRuntime(workspace, spec.rag, info.ref, info.template)


async def ground(prepared: Prepared) -> Answer | None:
    """Ground ``prepared`` in its deployment's knowledge base (before routing).

    Returns the refusal :class:`Answer` when ``grounded_only`` finds nothing
    to ground in; None when the request goes on to the model (or is not a
    rag deployment's).
    """
    runtime: RagRuntime | None = getattr(prepared.live, "rag", None)
    if runtime is None:
        return None
    kb_ref, hits, kept = await asyncio.to_thread(runtime.retrieve, prepared.question)
    prepared.grounding = Grounding(kb_ref, len(hits), kept)
    if not kept and runtime.policy.grounded_only:
        prepared.grounding.refused = True
        return _refusal(kb_ref, runtime.policy)
    _rewrite(prepared, runtime.prompt(prepared.question, kept))
    prepared.prompt_version = runtime.prompt_ref
    return None


def _rewrite(prepared: Prepared, grounded: str) -> None:
    """The model gets the grounded prompt in place of the last user turn
    (of a chat) or of the prompt (of a text completion)."""
    request = prepared.request
    if request.messages is not None:
        messages = list(request.messages)
        last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
        if last is not None:
            messages[last] = {**messages[last], "content": grounded}
        prepared.request = replace(request, messages=tuple(messages))
    else:
        prepared.request = replace(request, prompt=grounded)


def _refusal(kb_ref: str, policy: RagPolicy) -> Answer:
    from llmline.gateway.serving import Answer

    floor = f" scored {policy.min_score:g} or more" if policy.min_score is not None else ""
    return Answer(
        text=g.REFUSAL,
        finish_reason="stop",
        prompt_tokens=0,
        completion_tokens=0,
        target=None,
        route_reason=f"refused: nothing in knowledge base {kb_ref}{floor}",
        cache="off",
    )


def citations(prepared: Prepared, text: str) -> list[Citation] | None:
    """``citation_metadata`` of a grounded answer: one citation per source
    and output span it supports.  None when the request was not grounded."""
    grounding: Grounding | None = getattr(prepared, "grounding", None)
    if grounding is None:
        return None
    if grounding.refused or not text:
        return []
    sources = grounding.sources
    return [
        Citation(
            start_index=span.start,
            end_index=span.end,
            uri=sources[span.source - 1].source,
            title=sources[span.source - 1].title,
            chunk_id=sources[span.source - 1].chunk_id,
            source_start=sources[span.source - 1].start,
            source_end=sources[span.source - 1].end,
        )
        for span in g.map_citations(text, [h.text for h in sources])
    ]
