"""Training the prompt-injection classifier of :mod:`llmline.guard.scanners.injection`.

The classifier is a logistic regression over MiniLM embeddings of the
scanner's views of each text (normalised text, decoded payloads), fitted on
the labeled set shipped in ``llmline/guard/data/injection_train.jsonl``.
Its weights are plain arrays in an ``.npz`` (no pickle), cached at
``$LLMLINE_CACHE_DIR/guard/injection-<sha256[:12]>.npz`` (default cache
directory ``~/.cache/llmline``), keyed by the training file's SHA-256 so
that a changed data set retrains.

``python -m llmline.guard.train`` trains and writes the cache (the build
step); the scanner trains once on first use when the file is missing.
Training embeds the views of the 1,002 shipped texts (about 1,030) and
fits six small regressions (one, and five for calibration): measured at
5.7-6.1 s on two otherwise idle CPU cores once MiniLM is loaded (loading it
took 4.6 s), and 27-53 s while other jobs kept both cores busy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from llmline.errors import ImportFileError
from llmline.guard.scanners.injection import classifier_views

__all__ = [
    "DATA",
    "FEATURE_VERSION",
    "Example",
    "InjectionWeights",
    "cache_path",
    "calibration_offset",
    "data_sha256",
    "default_cache_dir",
    "ensure_weights",
    "featurize",
    "fit",
    "load_examples",
    "load_weights",
    "main",
    "save_weights",
    "train",
]

logger = logging.getLogger(__name__)

DATA = Path(__file__).parent / "data" / "injection_train.jsonl"
#: Bumped when the views or the model change, so stale caches retrain.
FEATURE_VERSION = 2
#: Inverse regularisation strength, chosen by cross-validation on the shipped
#: set (recall and false positives were flat from 2 to 8).
C = 4.0
SEED = 0
#: Benign share (out of fold) the classifier alone may flag at 0.5.
TARGET_FPR = 0.03

Embed = Callable[[Sequence[str]], Any]


@dataclass(frozen=True)
class Example:
    text: str
    label: int
    style: str


def load_examples(path: Path = DATA) -> list[Example]:
    """The labeled texts in ``path`` (JSON lines of text, label 0|1, style)."""
    examples: list[Example] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text, label = row["text"], row["label"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ImportFileError(str(path), number, f"bad example: {exc}") from None
            if not isinstance(text, str) or label not in (0, 1):
                raise ImportFileError(str(path), number, "text must be a string, label 0 or 1")
            examples.append(Example(text, int(label), str(row.get("style", ""))))
    if len({e.label for e in examples}) < 2:
        raise ImportFileError(str(path), None, "needs examples of both labels")
    return examples


def data_sha256(path: Path = DATA) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True, eq=False)  # arrays: compare the fields, not the objects
class InjectionWeights:
    """A fitted logistic regression: ``coef`` (one weight per embedding
    dimension) and ``intercept``, and the SHA-256 of its training data."""

    coef: npt.NDArray[np.float32]
    intercept: float
    data_sha256: str

    def probabilities(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        if vectors.ndim != 2 or vectors.shape[1] != self.coef.shape[0]:
            raise ValueError(
                f"embeddings of width {vectors.shape[-1]} do not fit weights of "
                f"width {self.coef.shape[0]} (trained with another embedder?)"
            )
        logits = vectors.astype(np.float64) @ self.coef.astype(np.float64) + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(logits, -50.0, 50.0))), dtype=np.float64)


def featurize(
    examples: Sequence[Example], embed: Embed, *, max_chars: int = 4000
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """One embedding per view of each example (in one batch), with the
    example's label and index."""
    texts: list[str] = []
    owners: list[int] = []
    for index, example in enumerate(examples):
        for view in classifier_views(example.text, max_chars=max_chars) or [""]:
            texts.append(view)
            owners.append(index)
    vectors = np.asarray(embed(texts), dtype=np.float32)
    owner = np.asarray(owners, dtype=np.int64)
    labels = np.asarray([examples[i].label for i in owners], dtype=np.int64)
    return vectors, labels, owner


def fit(
    vectors: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    owner: npt.NDArray[np.int64] | None = None,
    *,
    c: float = C,
    iterations: int = 50,
) -> tuple[npt.NDArray[np.float32], float]:
    """L2-regularised logistic regression (the objective of scikit-learn's
    ``LogisticRegression(C=c, class_weight="balanced")``), fitted by Newton's
    method: 385 unknowns and a thousand rows converge in a few steps, and
    numpy alone keeps the result the same everywhere.  An example's views
    share its weight, so one with three decoded payloads counts as much as
    one without."""
    x = np.hstack([vectors.astype(np.float64), np.ones((len(vectors), 1))])
    y = labels.astype(np.float64)
    counts = np.bincount(labels, minlength=2).astype(np.float64)
    weight = (len(labels) / (2.0 * counts))[labels]  # balanced classes
    if owner is not None:
        weight = weight / np.bincount(owner)[owner]
    penalty = np.ones(x.shape[1])
    penalty[-1] = 0.0  # the intercept is not regularised
    theta = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ theta, -50.0, 50.0)))
        gradient = c * (x.T @ (weight * (p - y))) + penalty * theta
        hessian = c * (x.T * (weight * p * (1.0 - p))) @ x + np.diag(penalty)
        step = np.linalg.solve(hessian + 1e-9 * np.eye(len(theta)), gradient)
        theta -= step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    return np.asarray(theta[:-1], dtype=np.float32), float(theta[-1])


def _per_example(probabilities: npt.NDArray[np.float64], owner: npt.NDArray[np.int64]) -> Any:
    """Each example's score: its most suspicious view's probability."""
    best = np.zeros(int(owner.max()) + 1)
    np.maximum.at(best, owner, probabilities)
    return best


def calibration_offset(
    vectors: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    owner: npt.NDArray[np.int64],
    *,
    target_fpr: float = TARGET_FPR,
    folds: int = 5,
    seed: int = SEED,
) -> float:
    """How far to lower the logit so that at most ``target_fpr`` of benign
    examples score 0.5 or more *out of fold* (each scored by a model fitted
    without it).  In-sample scores would flatter the model; a balanced
    logistic regression puts its 0.5 where the classes overlap, which on
    ordinary traffic (mostly benign) raises too many false alarms.  Never
    negative: the bar is only raised."""
    example_labels = np.zeros(int(owner.max()) + 1, dtype=np.int64)
    example_labels[owner] = labels
    rng = np.random.default_rng(seed)
    fold_of = np.zeros(len(example_labels), dtype=np.int64)
    for label in (0, 1):  # stratified: each fold gets its share of both labels
        members = np.flatnonzero(example_labels == label)
        rng.shuffle(members)
        fold_of[members] = np.arange(len(members)) % folds
    scores = np.zeros(len(example_labels))
    for fold in range(folds):
        held = fold_of[owner] == fold
        coef, intercept = fit(vectors[~held], labels[~held], owner[~held])
        logits = vectors[held].astype(np.float64) @ coef.astype(np.float64) + intercept
        best = _per_example(1.0 / (1.0 + np.exp(-logits)), owner[held])
        in_fold = np.flatnonzero(fold_of == fold)
        scores[in_fold] = best[in_fold]
    benign = scores[example_labels == 0]
    cutoff = float(np.quantile(benign, 1.0 - target_fpr))
    cutoff = min(max(cutoff, 1e-6), 1.0 - 1e-6)
    return max(0.0, float(np.log(cutoff / (1.0 - cutoff))))


def train(embed: Embed | None = None, *, data: Path | None = None) -> InjectionWeights:
    """Fit the classifier on ``data`` (the shipped set by default), with its
    intercept calibrated by :func:`calibration_offset`."""
    path = data or DATA
    if embed is None:
        from llmline.gateway.embedder import MiniLMEmbedder

        embed = MiniLMEmbedder().embed
    examples = load_examples(path)
    vectors, labels, owner = featurize(examples, embed)
    coef, intercept = fit(vectors, labels, owner)
    offset = calibration_offset(vectors, labels, owner)
    return InjectionWeights(coef, intercept - offset, data_sha256(path))


# -- the cache -----------------------------------------------------------------
def default_cache_dir() -> Path:
    """``$LLMLINE_CACHE_DIR``, else ``~/.cache/llmline``."""
    configured = os.environ.get("LLMLINE_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "llmline"


def cache_path(sha256: str, cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / "guard" / f"injection-{sha256[:12]}.npz"


def save_weights(weights: InjectionWeights, path: Path) -> None:
    """Write ``weights`` to ``path`` atomically: into a temporary file in the
    same directory, then renamed over ``path``, so that a reader (another
    process starting up) never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(
                fh,
                coef=weights.coef.astype(np.float32),
                intercept=np.float64(weights.intercept),
                data_sha256=np.str_(weights.data_sha256),
                feature_version=np.int64(FEATURE_VERSION),
            )
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes the file private; the cache is built once (often by
        # another user, at image build time) and read by every process.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_weights(path: Path, *, sha256: str | None = None) -> InjectionWeights | None:
    """The weights in ``path``; None when it is missing, unreadable, from
    another feature version or (given ``sha256``) from other data."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            version = int(npz["feature_version"])
            weights = InjectionWeights(
                np.asarray(npz["coef"], dtype=np.float32),
                float(npz["intercept"]),
                str(npz["data_sha256"]),
            )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("ignoring unreadable injection weights %s: %s", path, exc)
        return None
    if version != FEATURE_VERSION or (sha256 is not None and weights.data_sha256 != sha256):
        return None
    return weights


_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path.resolve(), threading.Lock())


def ensure_weights(
    embed: Embed | None = None, *, data: Path | None = None, cache_dir: Path | None = None
) -> InjectionWeights:
    """The cached weights for ``data``, trained and cached first when
    missing; threads asking at once wait for one training."""
    path_in = data or DATA
    sha = data_sha256(path_in)
    path = cache_path(sha, cache_dir)
    with _lock_for(path):
        weights = load_weights(path, sha256=sha)
        if weights is not None:
            return weights
        logger.info("training the prompt-injection classifier (cache %s)", path)
        weights = train(embed, data=path_in)
        try:
            save_weights(weights, path)
        except OSError as exc:  # a read-only home still gets a working scanner
            logger.warning("cannot cache injection weights at %s: %s", path, exc)
        return weights


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m llmline.guard.train [--data F] [--cache-dir D] [--force]``."""
    parser = argparse.ArgumentParser(prog="python -m llmline.guard.train", description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA, help="labeled JSON lines")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: see above")
    parser.add_argument("--force", action="store_true", help="retrain even when cached")
    args = parser.parse_args(argv)
    path = cache_path(data_sha256(args.data), args.cache_dir)
    if not args.force and load_weights(path, sha256=data_sha256(args.data)) is not None:
        print(f"up to date: {path}")
        return 0
    from llmline.gateway.embedder import MiniLMEmbedder

    started = time.perf_counter()
    embedder = MiniLMEmbedder()
    embedder.embed(["load"])
    loaded = time.perf_counter()
    weights = train(embedder.embed, data=args.data)
    save_weights(weights, path)
    done = time.perf_counter()
    print(
        f"wrote {path} ({len(load_examples(args.data))} examples; MiniLM loaded in "
        f"{loaded - started:.1f} s, trained in {done - loaded:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
