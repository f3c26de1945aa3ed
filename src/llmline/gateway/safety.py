"""Safety attributes of prompts and outputs: scanner plugins, a toxicity
scanner, a blocking policy and the checker that combines them.

Each scanner reports, per category, a *probability* (how sure it is that the
category applies, 0..1) and a *severity* (how harmful the content would be if
it does: ``negligible`` < ``low`` < ``medium`` < ``high``).  The two are kept
apart, as in managed LLM APIs' safety ratings: "you idiot" is almost surely
an insult of low severity, while an oddly worded death threat may score a
modest probability but is of high severity.  :class:`SafetyPolicy` blocks on
the pair, and :class:`SafetyChecker` turns scanner results into the
``safety_attributes`` (or ``input_safety_attributes``) a response carries.

:class:`ToxicityScanner` takes its probability from ``alt-profanity-check``
(a calibrated linear SVM over TF-IDF word features, loaded once on first
use; it scores each sentence and the text gets its most offensive one)
and its severity from a small curated lexicon of patterns
(:data:`DEFAULT_LEXICON`).  Later scanners (prompt injection, PII) implement
the same :class:`Scanner` protocol and may report any categories they like.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmline._pydantic import problems
from llmline.errors import ConfigError
from llmline.gateway.protocol import extensions

__all__ = [
    "DEFAULT_LEXICON",
    "NEVER",
    "SEVERITIES",
    "BlockLevel",
    "CategoryPolicy",
    "LexiconEntry",
    "SafetyAttributes",
    "SafetyChecker",
    "SafetyPolicy",
    "ScanContext",
    "ScanResult",
    "Scanner",
    "Severity",
    "ToxicityScanner",
    "create_toxicity_scanner",
    "severity_rank",
]

logger = logging.getLogger(__name__)

Severity = Literal["negligible", "low", "medium", "high"]
SEVERITIES: tuple[Severity, ...] = ("negligible", "low", "medium", "high")
_RANK: dict[str, int] = {level: i for i, level in enumerate(SEVERITIES)}
#: A policy level above every severity: the category never blocks.
NEVER = "never"


def severity_rank(level: str) -> int:
    """0 for ``negligible`` up to 3 for ``high`` (4 for ``never``)."""
    return _RANK.get(level, len(SEVERITIES))


# -- the plugin interface ------------------------------------------------------
@dataclass(frozen=True)
class ScanContext:
    """What a scanner may know besides the text.  ``prompt`` is set when an
    output is scanned, so a scanner can judge the answer in its context."""

    direction: Literal["input", "output"] = "output"
    deployment: str | None = None
    model: str | None = None
    request_id: str = ""
    prompt: str | None = None


@dataclass(frozen=True)
class ScanResult:
    """One scanner's findings: probability and severity per category.

    A category with a score and no severity is ``negligible``.
    ``redacted_text`` is the text with the offending parts replaced, for
    scanners that can (PII); ``notes`` are short remarks for logs, never
    the offending text itself.
    """

    scores: Mapping[str, float] = field(default_factory=dict)
    severity: Mapping[str, Severity] = field(default_factory=dict)
    redacted_text: str | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for category, score in self.scores.items():
            if not 0.0 <= score <= 1.0:
                raise ValueError(f"score of {category!r} must be within 0..1, got {score}")
        for category, level in self.severity.items():
            if level not in _RANK:
                raise ValueError(f"severity of {category!r} must be one of {SEVERITIES}")
            if category not in self.scores:
                raise ValueError(f"severity of {category!r} given without a score")


@runtime_checkable
class Scanner(Protocol):
    """A safety scanner.  ``scan`` must be safe to call from several threads
    at once (the checker runs scanners in worker threads)."""

    name: str

    def scan(self, text: str, context: ScanContext) -> ScanResult: ...


# -- the lexicon ---------------------------------------------------------------
@dataclass(frozen=True)
class LexiconEntry:
    """A pattern that, when present, puts text in ``category`` at ``severity``.

    ``evidence`` is how likely the category is from the match alone (before
    the classifier's opinion): an explicit "I will kill you" is strong
    evidence, a lone swear word is weak evidence of anything but profanity.
    """

    category: str
    severity: Severity
    evidence: float
    regex: re.Pattern[str]


def _entry(category: str, severity: Severity, evidence: float, *alternatives: str) -> LexiconEntry:
    pattern = r"\b(?:" + "|".join(alternatives) + r")\b"
    return LexiconEntry(category, severity, evidence, re.compile(pattern))


# Groups that hate speech targets; a sample, matched together with a hostile
# predicate only (a group named alone is not a signal).
_GROUPS = (
    r"(?:immigrants|refugees|foreigners|muslims|jews|christians|hindus|arabs|blacks|whites|"
    r"asians|mexicans|gays|lesbians|trans people|women|gypsies)"
)
_YOU = r"(?:you|u|ya|your (?:family|kids|children|wife|husband|mother|mom))"
_WILL = r"(?:i ?'?ll|i will|i am going to|i'?m going to|i'?m gonna|i gonna|we ?'?ll|we will)"
_HARM = r"(?:kill|murder|shoot|stab|strangle|behead|slaughter|hurt|beat up|rape|burn)"

# Patterns run on lower-cased text with curly apostrophes straightened and
# whitespace collapsed.  Technical uses (``kill -9``, "kill the child
# process", "fork bomb", "shoot yourself in the foot", a ``sex`` column) must
# not match: violence patterns need a human target.  No slurs are listed;
# the classifier's probability is what catches those.
DEFAULT_LEXICON: tuple[LexiconEntry, ...] = (
    # profanity: mild words are negligible, strong ones low, the worst medium
    _entry("profanity", "negligible", 0.3, r"damn(?:ed|it)?", r"dammit", r"crap(?:py)?", r"heck"),
    _entry("profanity", "negligible", 0.2, r"sucks?"),
    _entry(
        "profanity",
        "low",
        0.6,
        r"f[u*]+c?k(?:s|ed|ing|in)?",
        r"f\*+k",
        r"wtf",
        r"shit(?:s|ty|ting)?",
        r"bullshit",
        r"piss(?:ed)? off",
        r"bitch(?:es|y)?",
        r"bastards?",
        r"assholes?",
        r"dumbass",
        r"jackass",
        r"go to hell",
    ),
    _entry("profanity", "medium", 0.8, r"motherf[u*]+c?kers?", r"cunts?"),
    # insults: directed at the reader
    _entry(
        "insult",
        "low",
        0.6,
        r"(?:you(?: are|'re| r)|ur) (?:(?:such |so |a |an |really |the |a little bit |"
        r"totally |completely )*)(?:idiot|moron|stupid|dumb|imbecile|loser|clown|fool|"
        r"pathetic|useless|incompetent|ignorant|ugly)\w*",
        r"(?:you|u) (?:idiot|moron|imbecile|loser|clown|fool)s?",
        r"shut up",
        r"screw you",
        r"nobody (?:likes|cares about) you",
    ),
    _entry(
        "insult",
        "medium",
        0.8,
        r"(?:you|u) (?:f[u*]+c?king |stupid |dumb )(?:idiot|moron|retard|bitch|loser|bastard)s?",
        r"(?:worthless|useless) piece of (?:shit|garbage|trash)",
        r"piece of shit",
        r"retard(?:ed|s)?",
    ),
    # threats: intent to harm the reader or those close to them
    _entry(
        "threat",
        "high",
        0.7,
        rf"{_WILL} (?:\w+ )?{_HARM} {_YOU}",
        rf"(?:want|going|gonna) to {_HARM} {_YOU}",
        r"(?:you(?: are|'re)|ur) (?:going to|gonna) die",
        r"you (?:deserve|ought|need) to die",
        r"i know where you live",
        r"(?:i'?ll|i will) (?:find|hunt) you",
        r"watch your back",
        r"kill yourself",
        r"kys",
    ),
    # violence: harm to people in general, or how to do it
    _entry(
        "violence",
        "medium",
        0.6,
        r"(?:kill|murder|shoot|stab|torture|behead) (?:people|everyone|everybody|him|her|"
        r"them all|innocents?|civilians|children)",
        r"mass (?:shooting|murder)",
    ),
    _entry(
        "violence",
        "high",
        0.7,
        r"(?:make|build) (?:a|an) (?:pipe |nail |car )?bomb",
        r"bomb (?:the|a) (?:school|building|church|mosque|synagogue|temple|crowd|airport)",
        r"shoot up (?:the|a|my) (?:school|office|church|mall)",
    ),
    # self-harm: mentions are low; intent and methods are high
    _entry("self-harm", "low", 0.4, r"suicid(?:e|al)", r"self[- ]harm"),
    _entry("self-harm", "medium", 0.6, r"(?:cut|hurt|harm|starve) myself", r"kill yourself"),
    _entry(
        "self-harm",
        "high",
        0.8,
        r"kill(?:ing)? myself",
        r"end(?:ing)? my (?:own )?life",
        r"i (?:just |really )?(?:want|wanna) (?:to )?die",
        r"(?:going|gonna|want|plan(?:ning)?) to end it all",
        r"take my own life",
    ),
    # sexual: explicit content is medium; anything involving minors is high
    _entry(
        "sexual",
        "medium",
        0.6,
        r"porn\w*",
        r"blow ?jobs?",
        r"hand ?jobs?",
        r"(?:have|having|had) sex with",
        r"nudes",
        r"naked (?:pics|pictures|photos)",
        r"horny",
    ),
    _entry(
        "sexual",
        "high",
        0.8,
        r"(?:child|kid|minor|underage|preteen)s? ?(?:porn\w*|nudes|sex)",
        r"sex with (?:a )?(?:child|kid|minor)s?",
    ),
    # hate: hostility towards a group
    _entry(
        "hate",
        "medium",
        0.6,
        rf"i hate (?:all )?{_GROUPS}",
        rf"{_GROUPS} are (?:all )?(?:inferior|criminals|terrorists|stupid|disgusting)",
    ),
    _entry(
        "hate",
        "high",
        0.8,
        rf"(?:all |those |these |the )?{_GROUPS} (?:should|must|deserve to|need to) "
        r"(?:die|be killed|be exterminated|be wiped out|burn|be gassed)",
        rf"(?:kill|exterminate|gas) (?:all|the) {_GROUPS}",
        rf"{_GROUPS} are (?:animals|vermin|subhuman|parasites|cockroaches|rats|filth)",
    ),
)


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return " ".join(text.split())


# -- the classifier -------------------------------------------------------------
class _LazyClassifier:
    """alt-profanity-check's model, loaded on first use by one thread.

    Importing ``profanity_check`` unpickles an sklearn model (about a
    second); the lock makes concurrent first calls wait for one load
    instead of racing.  Prediction only reads the fitted model, so it is
    safe from several threads at once.

    The model is sklearn's ``CalibratedClassifierCV`` over five
    ``LinearSVC`` folds with sigmoid calibration; its ``predict_proba``
    costs about 3 ms a call in sklearn's per-call checks, which the gateway
    pays twice per request.  :class:`_CalibratedLinear` computes the same
    numbers (a test compares them) in tens of microseconds.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._predict: Callable[[list[str]], Any] | None = None

    def load(self) -> Callable[[list[str]], Any]:
        if self._predict is None:
            with self._lock:
                if self._predict is None:
                    from profanity_check import profanity_check  # type: ignore[import-untyped]

                    self._predict = _CalibratedLinear(
                        profanity_check.vectorizer, profanity_check.model
                    )
        return self._predict

    def __call__(self, texts: list[str]) -> list[float]:
        return [float(p) for p in self.load()(texts)]


class _CalibratedLinear:
    """``mean_k expit(-(a_k * (w_k . x + b_k) + c_k))``: the positive-class
    probability of a binary, sigmoid-calibrated ensemble of linear models,
    as ``CalibratedClassifierCV.predict_proba`` computes it."""

    def __init__(self, vectorizer: Any, model: Any) -> None:
        folds = model.calibrated_classifiers_
        if any(len(f.calibrators) != 1 or not hasattr(f.calibrators[0], "a_") for f in folds):
            raise TypeError("expected a binary, sigmoid-calibrated linear model")
        self._features = _TfidfFeatures(vectorizer)
        self._weights = np.vstack([f.estimator.coef_.ravel() for f in folds]).T
        self._intercepts = np.array([float(f.estimator.intercept_[0]) for f in folds])
        self._a = np.array([float(f.calibrators[0].a_) for f in folds])
        self._b = np.array([float(f.calibrators[0].b_) for f in folds])

    def __call__(self, texts: list[str]) -> npt.NDArray[np.float64]:
        scores = np.vstack([self._score(text) for text in texts]) if texts else np.zeros((0, 1))
        probs = 1.0 / (1.0 + np.exp(self._a * scores + self._b))
        return np.minimum(np.asarray(probs.mean(axis=1), dtype=np.float64), 1.0)

    def _score(self, text: str) -> npt.NDArray[np.float64]:
        columns, values = self._features(text)
        if not columns:
            return self._intercepts.copy()
        return np.asarray(values @ self._weights[columns] + self._intercepts, dtype=np.float64)


class _TfidfFeatures:
    """One text's non-zero TF-IDF features, as the fitted word-level
    ``TfidfVectorizer`` computes them (token pattern, lowercase, stop words,
    raw counts × idf, l2 norm) without sklearn's per-call overhead."""

    def __init__(self, vectorizer: Any) -> None:
        params = vectorizer.get_params()
        supported = (
            params["analyzer"] == "word"
            and params["ngram_range"] == (1, 1)
            and params["norm"] == "l2"
            and params["use_idf"]
            and not params["sublinear_tf"]
            and not params["binary"]
            and params["tokenizer"] is None
            and params["preprocessor"] is None
            and params["strip_accents"] is None
        )
        if not supported:
            raise TypeError("unsupported TfidfVectorizer settings")
        self._pattern = re.compile(params["token_pattern"])
        self._lowercase = bool(params["lowercase"])
        self._stop = frozenset(vectorizer.get_stop_words() or ())
        self._vocabulary: dict[str, int] = dict(vectorizer.vocabulary_)
        self._idf = np.asarray(vectorizer.idf_, dtype=np.float64)

    def __call__(self, text: str) -> tuple[list[int], npt.NDArray[np.float64]]:
        if self._lowercase:
            text = text.lower()
        counts: dict[int, int] = {}
        for token in self._pattern.findall(text):
            column = self._vocabulary.get(token)
            if column is not None and token not in self._stop:
                counts[column] = counts.get(column, 0) + 1
        columns = sorted(counts)
        values = np.array([counts[c] for c in columns], dtype=np.float64) * self._idf[columns]
        norm = float(np.sqrt(values @ values)) if columns else 0.0
        return columns, values / norm if norm > 0 else values


_CLASSIFIER = _LazyClassifier()
# A sentence ends at . ! or ? before white space (not inside ``os.kill`` or
# ``3.7``) or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n")


def _chunks(text: str, limit: int) -> list[str]:
    """Sentences (or lines) of ``text``, at most ``limit`` of them.

    The classifier scores each piece and the text gets the maximum: one
    toxic sentence inside a long, polite answer must not be averaged away.
    """
    pieces = [p.strip() for p in _SENTENCE_END.split(text)]
    pieces = [p for p in pieces if any(c.isalnum() for c in p)]
    if len(pieces) <= limit:
        return pieces
    size = -(-len(pieces) // limit)
    return [" ".join(pieces[i : i + size]) for i in range(0, len(pieces), size)]


class ToxicityScanner:
    """Toxic language: ``toxic``, always present (the classifier's
    probability of offensive language, of ``negligible`` severity: a policy
    override can block on it), and one score per lexicon category that
    matched (profanity, insult, threat, violence, self-harm, sexual, hate).

    A matched category's probability combines the match's own evidence and
    the classifier's probability as independent signals (noisy-or), so a
    pattern the classifier also finds offensive scores higher than either.
    """

    name = "toxicity"
    # Fast and bounded (well under a millisecond for a short text): the
    # checker may run it on the event loop instead of paying a thread hop.
    inline_chars = 4000

    def __init__(
        self,
        lexicon: Sequence[LexiconEntry] = DEFAULT_LEXICON,
        *,
        umbrella: str = "toxic",
        max_chunks: int = 64,
    ) -> None:
        if max_chunks < 1:
            raise ConfigError("max_chunks must be at least 1")
        self.lexicon = tuple(lexicon)
        self.umbrella = umbrella
        self.max_chunks = max_chunks

    def warm_up(self) -> None:
        """Load the classifier now rather than on the first request."""
        _CLASSIFIER.load()

    def probability(self, text: str) -> float:
        """The classifier's probability that ``text`` is offensive (its most
        offensive sentence), 0.0 for text without words."""
        pieces = _chunks(text, self.max_chunks)
        return max(_CLASSIFIER(pieces)) if pieces else 0.0

    def matches(self, text: str) -> dict[str, tuple[Severity, float]]:
        """Per matched category: the highest severity and evidence found."""
        normalised = _normalise(text)
        found: dict[str, tuple[Severity, float]] = {}
        for entry in self.lexicon:
            if not entry.regex.search(normalised):
                continue
            level, evidence = found.get(entry.category, ("negligible", 0.0))
            if severity_rank(entry.severity) > severity_rank(level):
                level = entry.severity
            found[entry.category] = (level, max(evidence, entry.evidence))
        return found

    def scan(self, text: str, context: ScanContext) -> ScanResult:
        p = self.probability(text)
        found = self.matches(text)
        # The umbrella has no severity of its own: blocking is decided by
        # the specific categories, so exempting one is not undone by it.
        scores = {self.umbrella: round(p, 4)}
        severity: dict[str, Severity] = {self.umbrella: "negligible"}
        for category, (level, evidence) in found.items():
            scores[category] = round(1.0 - (1.0 - evidence) * (1.0 - p), 4)
            severity[category] = level
        return ScanResult(scores=scores, severity=severity)


# -- policy --------------------------------------------------------------------
BlockLevel = Literal["negligible", "low", "medium", "high", "never"]


class CategoryPolicy(BaseModel):
    """Overrides for one category; unset fields fall back to the policy's."""

    model_config = ConfigDict(extra="forbid")

    block_severity: BlockLevel | None = Field(
        default=None, description="Block from this severity on (never: do not block)"
    )
    block_probability: float | None = Field(default=None, ge=0, le=1)


class SafetyPolicy(BaseModel):
    """When a response is blocked, and which categories are reported.

    A category blocks when its severity reaches ``block_severity`` *and* its
    probability reaches ``block_probability``: a likely but mild insult is
    reported and passes, a likely death threat is blocked.
    """

    model_config = ConfigDict(extra="forbid")

    block_severity: BlockLevel = Field(
        default="high", description="Block from this severity on (never: report only)"
    )
    block_probability: float = Field(
        default=0.5, ge=0, le=1, description="Least probability at which a category blocks"
    )
    flag_probability: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="A category of negligible severity is listed from this probability on",
    )
    categories: dict[str, CategoryPolicy] = Field(
        default_factory=dict, description="Per-category overrides"
    )

    @classmethod
    def parse(cls, document: Mapping[str, Any] | None) -> SafetyPolicy:
        """A policy from configuration; a bad one raises :class:`ConfigError`."""
        try:
            return cls.model_validate(dict(document or {}))
        except ValidationError as exc:
            raise ConfigError(f"invalid safety policy: {problems(exc, 'policy')}") from None

    def blocks(self, category: str, probability: float, severity: str) -> bool:
        override = self.categories.get(category) or CategoryPolicy()
        level = override.block_severity or self.block_severity
        least = self.block_probability
        if override.block_probability is not None:
            least = override.block_probability
        if level == NEVER:
            return False
        return severity_rank(severity) >= severity_rank(level) and probability >= least

    def flags(self, probability: float, severity: str) -> bool:
        """Whether a category has a signal worth listing."""
        return severity_rank(severity) > 0 or probability >= self.flag_probability


# -- the combined answer -------------------------------------------------------
class SafetyAttributes(extensions.SafetyAttributes):
    """``safety_attributes`` of a response; ``skipped`` names the scanners
    that did not report in time (or failed), so a caller can tell "clean"
    from "not fully checked"."""

    skipped: list[str] = Field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The response's JSON: ``blocked``, ``categories``, ``scores``,
        ``severity`` (and ``skipped`` only when a scanner was skipped)."""
        out: dict[str, Any] = {
            "blocked": self.blocked,
            "categories": list(self.categories),
            "scores": dict(self.scores),
            "severity": dict(self.severity),
        }
        if self.skipped:
            out["skipped"] = list(self.skipped)
        if self.redacted:
            out["redacted"] = True
        if self.decisions:
            out["decisions"] = [dict(d) for d in self.decisions]
        return out


class _DaemonPool:
    """Worker threads for scanners, started on first use.

    Not :func:`asyncio.to_thread`: the default executor's threads are
    joined when the event loop and the interpreter shut down, so one hung
    scanner would hang the gateway's shutdown.  These are daemon threads,
    and there are at most ``size`` of them, so hung scanners saturate the
    pool (later scans are then skipped as over budget) instead of piling
    up threads.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._jobs: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]]]
        self._jobs = queue.SimpleQueue()
        self._started = 0
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((future, job))
        with self._lock:
            if self._started < self.size:
                self._started += 1
                threading.Thread(target=self._work, name="safety-scanner", daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            future, job = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as exc:  # handed to the awaiting task
                future.set_exception(exc)


class SafetyChecker:
    """Runs scanners over a text and applies a policy to what they found.

    Several scanners may report the same category; the highest probability
    and the highest severity count.  ``check`` runs the scanners in the
    calling thread; ``acheck`` runs them concurrently in worker threads and
    gives each ``budget_s`` (or its entry in ``budgets``): a scanner over
    budget is skipped and named in ``skipped``.  ``workers`` bounds the
    threads ``acheck`` uses.  A scanner that raises is
    skipped the same way (and logged), in both.
    """

    def __init__(
        self,
        scanners: Sequence[Scanner],
        policy: SafetyPolicy | None = None,
        *,
        budget_s: float = 0.5,
        budgets: Mapping[str, float] | None = None,
        workers: int = 8,
    ) -> None:
        names = [s.name for s in scanners]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"scanner name(s) used twice: {', '.join(duplicates)}")
        budgets = dict(budgets or {})
        if budget_s <= 0 or any(b <= 0 for b in budgets.values()):
            raise ConfigError("scanner latency budgets must be positive")
        self.scanners = tuple(scanners)
        self.policy = policy or SafetyPolicy()
        self.budget_s = budget_s
        self.budgets = budgets
        self._pool = _DaemonPool(max(1, workers))

    def budget(self, scanner: str) -> float:
        return self.budgets.get(scanner, self.budget_s)

    def warm_up(self) -> None:
        """Load every scanner's model now (those with a ``warm_up`` method),
        so that the first request is not the one paying for it."""
        for scanner in self.scanners:
            warm_up = getattr(scanner, "warm_up", None)
            if callable(warm_up):
                warm_up()

    def check(self, text: str, context: ScanContext | None = None) -> SafetyAttributes:
        context = context or ScanContext()
        results: dict[str, ScanResult] = {}
        skipped: list[str] = []
        for scanner in self.scanners:
            try:
                results[scanner.name] = scanner.scan(text, context)
            except Exception as exc:  # one broken plugin must not fail the response
                skipped.append(_failed(scanner.name, exc))
        return self.combine(results.values(), skipped)

    async def acheck(self, text: str, context: ScanContext | None = None) -> SafetyAttributes:
        results, skipped = await self.aresults(text, context)
        return self.combine((r for _, r in results), skipped)

    async def aresults(
        self, text: str, context: ScanContext | None = None
    ) -> tuple[list[tuple[str, ScanResult]], list[str]]:
        """Every scanner's result by name, and the skipped ones' reasons."""
        context = context or ScanContext()
        results: list[tuple[str, ScanResult]] = []
        skipped: list[str] = []
        # A thread hop costs about as much as a fast scan; scanners that
        # declare ``inline_chars`` run inline on texts shorter than that.
        inline = [s for s in self.scanners if len(text) <= getattr(s, "inline_chars", -1)]
        pooled = [s for s in self.scanners if s not in inline]
        jobs = [asyncio.ensure_future(self._run(s, text, context)) for s in pooled]
        for scanner in inline:
            try:
                results.append((scanner.name, scanner.scan(text, context)))
            except Exception as exc:  # one broken plugin must not fail the response
                skipped.append(_failed(scanner.name, exc))
        for scanner, outcome in zip(pooled, await asyncio.gather(*jobs), strict=True):
            if isinstance(outcome, ScanResult):
                results.append((scanner.name, outcome))
            else:
                skipped.append(outcome)
        return results, skipped

    async def _run(self, scanner: Scanner, text: str, context: ScanContext) -> ScanResult | str:
        budget = self.budget(scanner.name)
        try:
            job = self._pool.submit(lambda: scanner.scan(text, context))
            result: ScanResult = await asyncio.wait_for(asyncio.wrap_future(job), budget)
            return result
        except TimeoutError:
            # A running scan cannot be stopped; it finishes in the
            # background and its result is dropped.
            logger.warning(
                "safety scanner %s skipped: over its %.3f s budget", scanner.name, budget
            )
            return f"{scanner.name}: over its {budget * 1000:g} ms budget"
        except Exception as exc:
            return _failed(scanner.name, exc)

    def combine(
        self, results: Iterable[ScanResult], skipped: Sequence[str] = ()
    ) -> SafetyAttributes:
        """Merge scanner results and apply the policy."""
        scores: dict[str, float] = {}
        severity: dict[str, Severity] = {}
        for result in results:
            for category, score in result.scores.items():
                scores[category] = max(score, scores.get(category, 0.0))
                level = result.severity.get(category, "negligible")
                if severity_rank(level) >= severity_rank(severity.get(category, "negligible")):
                    severity[category] = level
        policy = self.policy
        flagged = [c for c in scores if policy.flags(scores[c], severity[c])]
        # Most severe first, then most probable: what a reader looks at first.
        flagged.sort(key=lambda c: (-severity_rank(severity[c]), -scores[c], c))
        blocked = any(policy.blocks(c, scores[c], severity[c]) for c in scores)
        return SafetyAttributes(
            blocked=blocked,
            categories=flagged,
            scores=dict(sorted(scores.items())),
            severity=dict(sorted(severity.items())),
            skipped=list(skipped),
        )


def create_toxicity_scanner(options: Mapping[str, Any], *, embedder: Any = None) -> ToxicityScanner:
    """The ``toxicity`` entry point (no options)."""
    if options:
        raise ConfigError(f"guard scanner toxicity takes no options, got: {', '.join(options)}")
    return ToxicityScanner()


def _failed(name: str, exc: Exception) -> str:
    logger.warning("safety scanner %s failed", name, exc_info=exc)
    return f"{name}: failed ({type(exc).__name__})"
