"""How well the guardrail scanners do on a labelled evaluation set.

The set is JSONL, one item a line::

    {"id": "inj-001", "text": "...", "direction": "input", "labels": ["prompt_injection"],
     "pii_types": [], "style": "direct_override", "source": "written"}

``labels`` lists every category the text contains (``[]``: benign).  Each
scanner is judged only on the categories it is meant to find and only on
the items of the direction(s) it guards (:data:`JUDGING`): the injection
scanner sees inputs and is right when it flags exactly the items labelled
``prompt_injection``.  An item *detected* by a scanner is one where any
category the scanner reports scores at least the threshold (0.5 unless
told otherwise); for toxicity a category of severity above ``negligible``
counts too, as :class:`llmline.gateway.safety.SafetyPolicy` would block on it.

The held-out set that ships with the source checkout is
``tests/data/guard/eval.jsonl`` (see ``tests/data/guard/PROVENANCE.md``);
``llmline guard eval`` runs this module over it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmline._pydantic import problems
from llmline.errors import ConfigError, ImportFileError, UserError
from llmline.gateway.safety import ScanContext, Scanner, ScanResult, severity_rank

if TYPE_CHECKING:
    from llmline.guard.scanners import Embedder

__all__ = [
    "CATEGORIES",
    "DEFAULT_THRESHOLD",
    "JUDGING",
    "PII_TYPES",
    "Counts",
    "EvalItem",
    "EvalReport",
    "Judging",
    "ScannerReport",
    "TargetResult",
    "TypeRecall",
    "build_scanners",
    "evaluate",
    "load_eval_set",
]

Direction = Literal["input", "output"]
Category = Literal[
    "prompt_injection",
    "pii",
    "secret",
    "toxicity",
    "unicode_smuggling",
    "sql_injection",
    "shell_injection",
    "refusal",
]
PiiType = Literal[
    "email",
    "phone",
    "credit_card",
    "iban",
    "ipv4",
    "ipv6",
    "us_ssn",
    "uk_nino",
    "es_dni",
    "in_aadhaar",
]
CATEGORIES: tuple[str, ...] = get_args(Category)
PII_TYPES: tuple[str, ...] = get_args(PiiType)
DEFAULT_THRESHOLD = 0.5


# -- the set -------------------------------------------------------------------
class _ItemModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    text: str = Field(min_length=1)
    direction: Direction
    labels: list[Category]
    pii_types: list[PiiType] = Field(default_factory=list)
    style: str = ""
    source: str = "written"


@dataclass(frozen=True)
class EvalItem:
    """One labelled text; ``labels`` empty means benign."""

    id: str
    text: str
    direction: Direction
    labels: frozenset[str]
    pii_types: frozenset[str] = frozenset()
    style: str = ""
    source: str = "written"

    @property
    def benign(self) -> bool:
        return not self.labels


def _parse_line(line: str) -> EvalItem:
    """One item; raises ``ValueError`` with the problem (no line number)."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    try:
        model = _ItemModel.model_validate(data)
    except ValidationError as exc:
        raise ValueError(problems(exc, "item")) from None
    if model.pii_types and "pii" not in model.labels:
        raise ValueError("pii_types given but 'pii' is not among the labels")
    return EvalItem(
        id=model.id,
        text=model.text,
        direction=model.direction,
        labels=frozenset(model.labels),
        pii_types=frozenset(model.pii_types),
        style=model.style,
        source=model.source,
    )


def load_eval_set(path: str | Path) -> list[EvalItem]:
    """The items of a JSONL eval set; a bad line raises
    :class:`~llmline.errors.ImportFileError` (a ``UserError``) naming it."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"eval set {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read eval set {path}: {exc}") from None
    items: list[EvalItem] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = _parse_line(line)
        except ValueError as exc:
            raise ImportFileError(str(path), number, str(exc)) from None
        if item.id in seen:
            raise ImportFileError(
                str(path), number, f"duplicate id {item.id!r} (first on line {seen[item.id]})"
            )
        seen[item.id] = number
        items.append(item)
    if not items:
        raise UserError(f"eval set {path} has no items")
    return items


# -- what each scanner is judged on --------------------------------------------
@dataclass(frozen=True)
class Judging:
    """The labels a scanner should find, the directions it scans, and whether
    a severity above ``negligible`` counts as a detection on its own."""

    categories: tuple[str, ...]
    directions: tuple[Direction, ...]
    severity_counts: bool = False


_BOTH: tuple[Direction, ...] = ("input", "output")
JUDGING: Mapping[str, Judging] = {
    "injection": Judging(("prompt_injection",), ("input",)),
    "pii": Judging(("pii",), _BOTH),
    "secrets": Judging(("secret",), _BOTH),
    "toxicity": Judging(("toxicity",), _BOTH, severity_counts=True),
    "unicode": Judging(("unicode_smuggling",), ("input",)),
    "code_injection": Judging(("sql_injection", "shell_injection"), ("input",)),
    "refusal": Judging(("refusal",), ("output",)),
}


def _detected(result: ScanResult, threshold: float, judging: Judging) -> bool:
    if any(score >= threshold for score in result.scores.values()):
        return True
    return judging.severity_counts and any(
        severity_rank(level) > 0 for level in result.severity.values()
    )


# -- figures -----------------------------------------------------------------------
def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass(frozen=True)
class Counts:
    """A confusion matrix and the rates derived from it (``None``: undefined,
    e.g. precision when nothing was flagged)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def fpr(self) -> float | None:
        return _ratio(self.fp, self.fp + self.tn)

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "precision": self.precision,
            "recall": self.recall,
            "fpr": self.fpr,
            "f1": self.f1,
        }


def _count(truth: Iterable[tuple[bool, bool]]) -> Counts:
    """Counts from (labelled, detected) pairs."""
    tp = fp = fn = tn = 0
    for labelled, detected in truth:
        if labelled:
            tp, fn = (tp + 1, fn) if detected else (tp, fn + 1)
        else:
            fp, tn = (fp + 1, tn) if detected else (fp, tn + 1)
    return Counts(tp, fp, fn, tn)


@dataclass(frozen=True)
class TypeRecall:
    """Of the items containing a PII type, how many the scanner found it in."""

    found: int
    total: int

    @property
    def recall(self) -> float:
        return self.found / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"found": self.found, "total": self.total, "recall": self.recall}


@dataclass(frozen=True)
class ScannerReport:
    """One scanner's figures on the items it was run on.

    ``benign_fpr`` is the share of benign items (no label at all) it
    flagged; ``fpr`` is over every item without its labels (a toxic text
    the injection scanner flags counts there).  ``by_category`` splits a
    scanner judged on several labels: each row's positives are the items
    with that label and its negatives the items with none of the
    scanner's labels.  ``missed``/``false_alarms`` are item ids.
    """

    name: str
    categories: tuple[str, ...]
    directions: tuple[Direction, ...]
    threshold: float
    counts: Counts
    benign: int
    benign_flagged: int
    latency_p50_ms: float
    latency_p99_ms: float
    missed: tuple[str, ...]
    false_alarms: tuple[str, ...]
    by_category: Mapping[str, Counts] = field(default_factory=dict)
    pii_types: Mapping[str, TypeRecall] = field(default_factory=dict)

    @property
    def items(self) -> int:
        c = self.counts
        return c.tp + c.fp + c.fn + c.tn

    @property
    def benign_fpr(self) -> float | None:
        return _ratio(self.benign_flagged, self.benign)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "categories": list(self.categories),
            "directions": list(self.directions),
            "threshold": self.threshold,
            "items": self.items,
            **self.counts.to_dict(),
            "benign": self.benign,
            "benign_flagged": self.benign_flagged,
            "benign_fpr": self.benign_fpr,
            "latency_p50_ms": round(self.latency_p50_ms, 4),
            "latency_p99_ms": round(self.latency_p99_ms, 4),
            "by_category": {k: v.to_dict() for k, v in self.by_category.items()},
            "pii_types": {k: v.to_dict() for k, v in self.pii_types.items()},
            "missed": list(self.missed),
            "false_alarms": list(self.false_alarms),
        }


@dataclass(frozen=True)
class TargetResult:
    """A quality target and whether the run met it (``None``: not run)."""

    scanner: str
    target: str
    met: bool | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "scanner": self.scanner,
            "target": self.target,
            "met": self.met,
            "detail": self.detail,
        }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _target(
    report: ScannerReport | None,
    name: str,
    text: str,
    check: Callable[[ScannerReport], bool],
    detail: Callable[[ScannerReport], str],
) -> TargetResult:
    if report is None:
        return TargetResult(name, text, None, "not run")
    return TargetResult(name, text, check(report), detail(report))


@dataclass(frozen=True)
class EvalReport:
    """Every scanner's figures, the scanners that could not run and why,
    and the make-up of the set."""

    scanners: tuple[ScannerReport, ...]
    skipped: Mapping[str, str]
    items: int
    labels: Mapping[str, int]
    benign_inputs: int
    benign_outputs: int

    def get(self, name: str) -> ScannerReport | None:
        return next((s for s in self.scanners if s.name == name), None)

    def targets(self) -> list[TargetResult]:
        """The release targets: injection recall >= 0.90 at benign FPR <= 0.05,
        PII recall >= 0.95."""
        return [
            _target(
                self.get("injection"),
                "injection",
                "recall >= 0.90 at benign FPR <= 0.05",
                lambda r: (r.counts.recall or 0.0) >= 0.90 and (r.benign_fpr or 0.0) <= 0.05,
                lambda r: f"recall {_fmt(r.counts.recall)}, benign FPR {_fmt(r.benign_fpr)}",
            ),
            _target(
                self.get("pii"),
                "pii",
                "recall >= 0.95",
                lambda r: (r.counts.recall or 0.0) >= 0.95,
                lambda r: f"recall {_fmt(r.counts.recall)}",
            ),
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "set": {
                "items": self.items,
                "labels": dict(self.labels),
                "benign_inputs": self.benign_inputs,
                "benign_outputs": self.benign_outputs,
            },
            "scanners": [s.to_dict() for s in self.scanners],
            "skipped": dict(self.skipped),
            "targets": [t.to_dict() for t in self.targets()],
        }


# -- running -------------------------------------------------------------------
class _ScannerFailed(Exception):
    """A scanner raised; ``where`` says in which step ("on item x-1")."""

    def __init__(self, where: str, exc: Exception) -> None:
        super().__init__(f"failed {where}: {type(exc).__name__}: {exc}")


def _scan_all(scanner: Scanner, items: Sequence[EvalItem]) -> tuple[list[ScanResult], list[float]]:
    """Every item's result and the seconds each scan took."""
    warm_up = getattr(scanner, "warm_up", None)
    if callable(warm_up):
        try:
            warm_up()  # model loading is not what the latency figures are about
        except Exception as exc:
            raise _ScannerFailed("to warm up", exc) from exc
    results: list[ScanResult] = []
    seconds: list[float] = []
    for item in items:
        context = ScanContext(direction=item.direction, request_id=item.id)
        try:
            start = time.perf_counter()
            result = scanner.scan(item.text, context)
            seconds.append(time.perf_counter() - start)
        except Exception as exc:
            raise _ScannerFailed(f"on item {item.id}", exc) from exc
        results.append(result)
    return results, seconds


def _found_types(
    scanner: Scanner, item: EvalItem, result: ScanResult, threshold: float
) -> set[str]:
    """The PII types a scanner found in an item: from ``find`` when it has one
    (``PiiScanner``), else the categories it scored at the threshold."""
    find = getattr(scanner, "find", None)
    if callable(find):
        try:
            matches = find(item.text)
        except Exception as exc:
            raise _ScannerFailed(f"in find() on item {item.id}", exc) from exc
        return {str(getattr(match, "type", "")).lower() for match in matches}
    return {category.lower() for category, s in result.scores.items() if s >= threshold}


def _pii_recall(
    scanner: Scanner, items: Sequence[EvalItem], results: Sequence[ScanResult], threshold: float
) -> dict[str, TypeRecall]:
    found: dict[str, int] = {}
    total: dict[str, int] = {}
    for item, result in zip(items, results, strict=True):
        if not item.pii_types:
            continue
        types = _found_types(scanner, item, result, threshold)
        for kind in item.pii_types:
            total[kind] = total.get(kind, 0) + 1
            found[kind] = found.get(kind, 0) + (kind in types)
    return {k: TypeRecall(found[k], total[k]) for k in PII_TYPES if k in total}


def _percentile_ms(seconds: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000.0, q)) if seconds else 0.0


def _judge(
    name: str, scanner: Scanner, judging: Judging, items: Sequence[EvalItem], threshold: float
) -> ScannerReport:
    mine = [item for item in items if item.direction in judging.directions]
    results, seconds = _scan_all(scanner, mine)
    flags = [_detected(r, threshold, judging) for r in results]
    wanted = set(judging.categories)
    truth = [bool(item.labels & wanted) for item in mine]
    by_category: dict[str, Counts] = {}
    if len(judging.categories) > 1:
        for category in judging.categories:
            by_category[category] = _count(
                (category in item.labels, flag)
                for item, flag in zip(mine, flags, strict=True)
                if category in item.labels or not item.labels & wanted
            )
    pairs = list(zip(mine, truth, flags, strict=True))
    return ScannerReport(
        name=name,
        categories=judging.categories,
        directions=judging.directions,
        threshold=threshold,
        counts=_count(zip(truth, flags, strict=True)),
        benign=sum(item.benign for item in mine),
        benign_flagged=sum(item.benign and flag for item, flag in zip(mine, flags, strict=True)),
        latency_p50_ms=_percentile_ms(seconds, 50),
        latency_p99_ms=_percentile_ms(seconds, 99),
        missed=tuple(item.id for item, t, f in pairs if t and not f),
        false_alarms=tuple(item.id for item, t, f in pairs if f and not t),
        by_category=by_category,
        pii_types=_pii_recall(scanner, mine, results, threshold) if "pii" in wanted else {},
    )


def _thresholds(given: Mapping[str, float] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in (given or {}).items():
        if name not in JUDGING:
            raise UserError(f"threshold given for {name!r}, which is not a judged scanner")
        if not 0.0 <= value <= 1.0:
            raise UserError(f"threshold of {name} must be within 0..1, got {value}")
        out[name] = float(value)
    return out


def evaluate(
    items: Sequence[EvalItem],
    scanners: Mapping[str, Scanner],
    *,
    thresholds: Mapping[str, float] | None = None,
    skipped: Mapping[str, str] | None = None,
) -> EvalReport:
    """Run each scanner (keyed by its entry-point name, e.g. ``injection``)
    on its items and score it.  A scanner with no labelled category, or one
    that raises, is listed in the report's ``skipped`` with the reason
    instead, after those passed in ``skipped`` (e.g. by :func:`build_scanners`)."""
    limits = _thresholds(thresholds)
    reports: list[ScannerReport] = []
    skipped = dict(skipped or {})
    for name, scanner in scanners.items():
        judging = JUDGING.get(name)
        if judging is None:
            skipped[name] = "no labelled category in the eval set"
            continue
        try:
            reports.append(
                _judge(name, scanner, judging, items, limits.get(name, DEFAULT_THRESHOLD))
            )
        except _ScannerFailed as exc:
            skipped[name] = str(exc)
    labels = {c: sum(c in item.labels for item in items) for c in CATEGORIES}
    return EvalReport(
        scanners=tuple(reports),
        skipped=skipped,
        items=len(items),
        labels=labels,
        benign_inputs=sum(i.benign and i.direction == "input" for i in items),
        benign_outputs=sum(i.benign and i.direction == "output" for i in items),
    )


def build_scanners(
    names: Sequence[str] | None = None, *, embedder: Embedder | None = None
) -> tuple[dict[str, Scanner], dict[str, str]]:
    """The judged scanners (all of :data:`JUDGING` by default) built with
    their default options, and the reason for each one that could not be
    built (not installed, or its module missing or broken).  A name that
    is not a judged scanner raises :class:`UserError`.  Without
    ``embedder`` the scanners share one lazily loaded MiniLM."""
    from llmline.gateway.embedder import MiniLMEmbedder
    from llmline.guard.scanners import create_scanner, scanner_names

    if embedder is None:
        embedder = MiniLMEmbedder().embed  # loads on first use only

    unknown = [n for n in names or () if n not in JUDGING]
    if unknown:
        raise UserError(
            f"cannot evaluate scanner {unknown[0]!r}: the eval set has labels for "
            + ", ".join(JUDGING)
        )
    installed = set(scanner_names())
    built: dict[str, Scanner] = {}
    skipped: dict[str, str] = {}
    for name in dict.fromkeys(names or JUDGING):
        if name not in installed:
            skipped[name] = "not installed (no llmline.scanners entry point)"
            continue
        try:
            built[name] = create_scanner(name, {}, embedder=embedder)
        except (ImportError, AttributeError) as exc:
            # Scanner modules land one by one: a missing one must not stop the rest.
            skipped[name] = f"not available: {type(exc).__name__}: {exc}"
        except ConfigError as exc:
            skipped[name] = f"cannot be built: {exc}"
    return built, skipped
