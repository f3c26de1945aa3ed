"""Evaluating retrieval-augmented answers over labelled questions.

Each question is labelled with the documents that answer it (pydoc topic
keys for the shipped set; any chunk ``title``, ``source`` URI or file name
for your own).  Per question:

* **recall@k**: share of its labelled documents among the top ``k`` chunks
  retrieved; **MRR**: 1 / rank of the first chunk from one of them.
* **context precision**: share of the chunks the answer was grounded in
  that come from a labelled document; **context recall**: share of the
  reference answer's sentences supported by those chunks.
* **faithfulness**: share of the answer's sentences (its claims) supported
  by the chunks.  "Supported" is an embedding-entailment proxy: the MiniLM
  cosine of the claim with the closest sentence of the chunks reaches
  ``threshold``.  An LLM judge (``judge=``) adds a 1-5 grade of the answer
  against the chunks as its reference.
* **answer relevance**: cosine of the question and the answer.
* **citation accuracy**: share of the answer's citations whose cited span
  is supported by the chunk it cites.

Answers come from a provider target run in this process (a registry model,
``embedded:…``, ``upstream:…``, ``fake:…``), grounded here exactly as a
``kind: rag`` deployment grounds them, or from a deployment of a running
gateway (its own retrieval, reported chunk ids and citations).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmline.errors import UserError
from llmline.evaluation.errors import EvaluationError
from llmline.rag import grounding as g

if TYPE_CHECKING:
    from llmline.evaluation.judge import Judge
    from llmline.evaluation.metrics import Embedder
    from llmline.prompts.template import Template
    from llmline.rag.kb import Hit, KnowledgeBase
    from llmline.workspace import Workspace

__all__ = [
    "DEFAULT_THRESHOLD",
    "LabeledQuestion",
    "RagEvaluation",
    "RagSample",
    "SupportScorer",
    "evaluate_rag",
    "gateway_samples",
    "generate_answers",
    "grounded_prompt",
    "is_relevant",
    "load_questions",
    "local_samples",
    "pin_target",
    "recall_at_k",
    "reciprocal_rank",
    "retrieval_samples",
    "score_sample",
    "shipped_questions_path",
]

#: MiniLM cosine at which a sentence counts as supported by a context
#: sentence: paraphrases score about 0.7 and up, sentences on the same
#: subject saying different things about 0.4-0.6.
DEFAULT_THRESHOLD = 0.6
METRICS = (
    "recall_at_k",
    "mrr",
    "context_precision",
    "context_recall",
    "faithfulness",
    "answer_relevance",
    "citation_accuracy",
    "latency_s",
)
_MARKERS = re.compile(r"\s*\[\d{1,3}(?:\s*,\s*\d{1,3})*\]")
_MIN_CLAIM_WORDS = 3


@dataclass(frozen=True)
class LabeledQuestion:
    question: str
    topics: tuple[str, ...]  # the documents that answer it
    answer: str  # a short reference answer


def shipped_questions_path() -> Path:
    """The labelled question set over CPython's pydoc topics shipped with llmline."""
    return Path(str(resources.files("llmline.rag") / "data" / "pydoc_questions.jsonl"))


def load_questions(path: str | Path, limit: int | None = None) -> list[LabeledQuestion]:
    """``{"question", "topics": [...], "answer"}`` per line of a JSONL file."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read the question set {path}: {exc.strerror}") from None
    questions = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            topics = row["topics"]
            questions.append(
                LabeledQuestion(
                    str(row["question"]),
                    (topics,) if isinstance(topics, str) else tuple(map(str, topics)),
                    str(row.get("answer", "")),
                )
            )
        except (ValueError, KeyError, TypeError):
            raise UserError(
                f"{path}:{number}: expected a JSON object with question, topics and answer"
            ) from None
    if not questions:
        raise UserError(f"the question set {path} is empty")
    return questions[:limit] if limit else questions


# -- retrieval metrics -----------------------------------------------------------------


def is_relevant(hit: Hit, topics: Sequence[str]) -> bool:
    """A chunk of a labelled document: by title, source URI, ``pydoc:`` topic or file name."""
    names = {hit.title, hit.source, hit.source.removeprefix("pydoc:"), hit.source.rsplit("/")[-1]}
    return any(topic in names for topic in topics)


def recall_at_k(retrieved: Sequence[Hit], topics: Sequence[str], k: int) -> float:
    found = {t for t in topics for hit in retrieved[:k] if is_relevant(hit, [t])}
    return len(found) / len(topics) if topics else 0.0


def reciprocal_rank(retrieved: Sequence[Hit], topics: Sequence[str]) -> float:
    for rank, hit in enumerate(retrieved, start=1):
        if is_relevant(hit, topics):
            return 1.0 / rank
    return 0.0


# -- support (the embedding-entailment proxy) ------------------------------------------


class SupportScorer:
    """Cosines of MiniLM embeddings, cached per text (variants share contexts)."""

    def __init__(self, embedder: Embedder | None = None, threshold: float = DEFAULT_THRESHOLD):
        self._embedder = embedder
        self.threshold = threshold
        self._cache: dict[str, np.ndarray[Any, Any]] = {}

    def vectors(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            if self._embedder is None:
                from llmline.evaluation.metrics import default_embedder

                self._embedder = default_embedder()
            raw = np.asarray(
                self._embedder.encode(missing, convert_to_numpy=True, show_progress_bar=False),
                dtype=np.float32,
            )
            norms = np.linalg.norm(raw, axis=1, keepdims=True)
            raw = np.divide(raw, norms, out=np.zeros_like(raw), where=norms > 0)
            self._cache.update(zip(missing, raw, strict=True))
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 1))

    def cosine(self, a: str, b: str) -> float:
        va, vb = self.vectors([a, b])
        return float(va @ vb)

    def support(self, claims: Sequence[str], contexts: Sequence[str]) -> list[float]:
        """Each claim's best cosine with a sentence of ``contexts`` (0 without any)."""
        sentences = [s for text in contexts for s in claims_of(text, min_words=1)]
        if not claims:
            return []
        if not sentences:
            return [0.0] * len(claims)
        sims = self.vectors(list(claims)) @ self.vectors(sentences).T
        return [float(v) for v in sims.max(axis=1)]

    def supported_share(self, claims: Sequence[str], contexts: Sequence[str]) -> float | None:
        if not claims:
            return None
        scores = self.support(claims, contexts)
        return sum(s >= self.threshold for s in scores) / len(scores)


def claims_of(text: str, *, min_words: int = _MIN_CLAIM_WORDS) -> list[str]:
    """The sentences of ``text``, citation markers removed, too-short ones dropped."""
    out = []
    for start, end in g.sentences(text):
        sentence = _MARKERS.sub("", text[start:end]).strip()
        if len(sentence.split()) >= min_words:
            out.append(sentence)
    return out


# -- samples and their scores ------------------------------------------------------------


@dataclass
class RagSample:
    """One question answered: what retrieval ranked, what the answer read, the answer."""

    question: LabeledQuestion
    retrieved: list[Hit]  # the ranking recall@k and MRR read
    contexts: list[Hit]  # the chunks the answer was grounded in (none: not grounded)
    answer: str
    latency_s: float
    citations: list[tuple[int, int, str]] = field(default_factory=list)  # span + cited text
    refused: bool = False


def score_sample(sample: RagSample, scorer: SupportScorer, k: int) -> dict[str, float | None]:
    """The metrics of one answered question (None: not applicable)."""
    q, contexts = sample.question, [h.text for h in sample.contexts]
    claims = [] if sample.refused else claims_of(sample.answer)
    relevant = [is_relevant(h, q.topics) for h in sample.contexts]
    return {
        "recall_at_k": recall_at_k(sample.retrieved, q.topics, k),
        "mrr": reciprocal_rank(sample.retrieved[:k], q.topics),
        "context_precision": sum(relevant) / len(relevant) if relevant else None,
        "context_recall": scorer.supported_share(claims_of(q.answer), contexts)
        if contexts
        else None,
        "faithfulness": scorer.supported_share(claims, contexts) if contexts else None,
        "answer_relevance": None
        if sample.refused or not sample.answer.strip()
        else scorer.cosine(q.question, sample.answer),
        "citation_accuracy": _citation_accuracy(sample, scorer),
        "latency_s": sample.latency_s if sample.answer else None,
    }


def _citation_accuracy(sample: RagSample, scorer: SupportScorer) -> float | None:
    if not sample.citations:
        return None
    supported = 0
    for start, end, cited in sample.citations:
        span = claims_of(sample.answer[start:end], min_words=1)
        scores = scorer.support(span, [cited]) if span else []
        supported += bool(scores) and max(scores) >= scorer.threshold
    return supported / len(sample.citations)


@dataclass
class RagEvaluation:
    knowledge_base: str
    target: str
    k: int
    threshold: float
    metrics: dict[str, float]  # means over the questions each metric applies to
    rows: list[dict[str, Any]]
    judge: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "knowledge_base": self.knowledge_base,
            "target": self.target,
            "k": self.k,
            "threshold": self.threshold,
            "questions": len(self.rows),
            "metrics": self.metrics,
            "judge": self.judge,
            "rows": self.rows,
        }


def evaluate_rag(
    samples: Sequence[RagSample],
    *,
    knowledge_base: str,
    target: str,
    k: int,
    scorer: SupportScorer | None = None,
    judge: Judge | None = None,
) -> RagEvaluation:
    """Score every sample; ``judge`` also grades each answer against its contexts."""
    if not samples:
        raise EvaluationError("nothing to evaluate: no questions")
    scorer = scorer or SupportScorer()
    rows = []
    for sample in samples:
        scores = score_sample(sample, scorer, k)
        rows.append(
            {
                "question": sample.question.question,
                "topics": list(sample.question.topics),
                "answer": sample.answer,
                "refused": sample.refused,
                "sources": [h.title for h in sample.contexts],
                **scores,
            }
        )
    metrics = mean_metrics(rows)
    metrics["refused"] = float(sum(s.refused for s in samples))
    verdicts = None
    if judge is not None:
        result = judge.grade_all(
            [s.question.question for s in samples],
            [g.format_context(s.contexts) or "(no sources)" for s in samples],
            [s.answer for s in samples],
        )
        metrics |= {f"faithfulness_{name}": v for name, v in result.to_metrics().items()}
        verdicts = result.to_dict()
    return RagEvaluation(knowledge_base, target, k, scorer.threshold, metrics, rows, verdicts)


def mean_metrics(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The mean of each metric over the rows where it applies (absent: none)."""
    out = {}
    for name in METRICS:
        values = [r[name] for r in rows if r.get(name) is not None]
        if values:
            out[name] = float(np.mean(values))
    return out


# -- answering: in this process, or through a gateway ----------------------------------


def grounded_prompt(template: Template | None, question: str, contexts: Sequence[Hit]) -> str:
    """The prompt a ``kind: rag`` deployment sends (default template: rag-grounded)."""
    if template is None:
        from llmline.prompts.template import Template

        template = Template.parse(g.DEFAULT_PROMPT_TEXT)
    values = {"context": g.format_context(contexts), "question": question}
    return template.render({v: values.get(v, "") for v in template.variables})


def generate_answers(
    workspace: Workspace | None, target: str, prompts: Sequence[str], *, max_tokens: int = 48
) -> list[tuple[str, float]]:
    """``(answer, seconds)`` per prompt from a provider target, one at a time
    (so each latency is the request's own), greedy."""
    return asyncio.run(_generate(workspace, target, prompts, max_tokens))


async def _generate(
    workspace: Workspace | None, target: str, prompts: Sequence[str], max_tokens: int
) -> list[tuple[str, float]]:
    from llmline.gateway.providers import (
        GenerationRequest,
        ProviderContext,
        create_provider,
        split_target,
    )

    options: dict[str, Any] = {}
    if workspace is not None and split_target(target)[0] == "embedded":
        options = workspace.settings.gateway.embedded.model_dump()
    provider = create_provider(target, ProviderContext(workspace, options))
    await provider.start()
    try:
        health = provider.health()
        if not health.ready:
            raise UserError(f"{target} did not start: {health.detail}")
        out = []
        for n, prompt in enumerate(prompts):
            request = GenerationRequest(
                messages=({"role": "user", "content": prompt},),
                max_tokens=max_tokens,
                temperature=0.0,
                request_id=f"eval-rag-{n}",
            )
            started = time.perf_counter()
            result = await provider.generate(request)
            out.append((result.text.strip(), time.perf_counter() - started))
        return out
    finally:
        await provider.close()


def local_samples(
    workspace: Workspace | None,
    kb: KnowledgeBase,
    questions: Sequence[LabeledQuestion],
    target: str,
    *,
    k: int = 5,
    max_context_tokens: int = 1500,
    max_tokens: int = 48,
    template: Template | None = None,
) -> list[RagSample]:
    """Retrieve, ground and answer each question with ``target`` in this process."""
    samples = retrieval_samples(kb, questions, k=k, max_context_tokens=max_context_tokens)
    prompts = [grounded_prompt(template, s.question.question, s.contexts) for s in samples]
    answers = generate_answers(workspace, target, prompts, max_tokens=max_tokens)
    for sample, (text, seconds) in zip(samples, answers, strict=True):
        ctx = sample.contexts
        sample.answer, sample.latency_s = text, seconds
        sample.citations = [
            (c.start, c.end, ctx[c.source - 1].text)
            for c in g.map_citations(text, [h.text for h in ctx])
        ]
    return samples


def retrieval_samples(
    kb: KnowledgeBase,
    questions: Sequence[LabeledQuestion],
    *,
    k: int = 5,
    max_context_tokens: int = 1500,
) -> list[RagSample]:
    """Each question retrieved and its context selected, not answered (the
    retrieval and context metrics only)."""
    samples = []
    for q in questions:
        hits = kb.search(q.question, k)
        samples.append(RagSample(q, hits, g.select_context(hits, max_context_tokens), "", 0.0))
    return samples


def pin_target(workspace: Workspace | None, target: str) -> str:
    """A registry reference as the exact version it names (results say which)."""
    from llmline.gateway.providers import split_target

    scheme, ref = split_target(target)
    if workspace is None or scheme != "embedded":
        return target
    from llmline.models import ModelRegistry

    return ModelRegistry(workspace.metadata).get(ref).ref


def gateway_samples(
    kb: KnowledgeBase,
    questions: Sequence[LabeledQuestion],
    base_url: str,
    deployment: str,
    *,
    k: int = 5,
    api_key: str | None = None,
    max_tokens: int = 48,
) -> list[RagSample]:
    """Ask ``deployment`` of the gateway at ``base_url`` (``…/v1``) each question.

    The contexts are the chunks the deployment reports it used (looked up
    by id in ``kb``); a deployment that reports none (not ``kind: rag``) is
    scored against this evaluation's own top-``k`` retrieval.
    """
    import openai

    chunks = _chunks_by_id(kb)
    samples = []
    with openai.OpenAI(base_url=base_url, api_key=api_key or "not-needed") as client:
        for q in questions:
            retrieved = kb.search(q.question, k)
            started = time.perf_counter()
            reply = client.chat.completions.create(
                model=deployment,
                messages=[{"role": "user", "content": q.question}],
                max_tokens=max_tokens,
                temperature=0.0,
            )
            seconds = time.perf_counter() - started
            samples.append(_gateway_sample(q, retrieved, reply, chunks, seconds))
    return samples


def _gateway_sample(
    q: LabeledQuestion, retrieved: list[Hit], reply: Any, chunks: dict[str, Hit], seconds: float
) -> RagSample:
    extra = reply.model_extra or {}
    text = reply.choices[0].message.content or ""
    grounding = (extra.get("llmline") or {}).get("grounding")
    if grounding is None:
        contexts = retrieved
    else:
        contexts = [chunks[s["chunk_id"]] for s in grounding["sources"] if s["chunk_id"] in chunks]
    citations = [
        (c["start_index"], c["end_index"], chunks[c["chunk_id"]].text)
        for c in (extra.get("citation_metadata") or {}).get("citations", [])
        if c.get("chunk_id") in chunks
    ]
    refused = bool(grounding and grounding.get("refused"))
    return RagSample(q, retrieved, contexts, text, seconds, citations, refused)


def _chunks_by_id(kb: KnowledgeBase) -> dict[str, Hit]:
    from llmline.rag.kb import Hit

    out = {}
    with open(kb.folder / "chunks.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                meta = row["metadata"]
                out[row["id"]] = Hit(
                    chunk_id=row["id"],
                    text=row["text"],
                    score=0.0,
                    source=meta["source"],
                    title=meta["title"],
                    start=row["start"],
                    end=row["end"],
                    metadata=meta,
                )
    return out
