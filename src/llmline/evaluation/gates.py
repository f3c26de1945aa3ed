"""Promotion gates checked against stored evaluations.

The model registry decides promotions with a
:data:`~llmline.models.info.GateCheck`; :func:`evaluation_gate` builds one
that reads the newest recorded evaluation of the candidate (and, for gates
relative to the base, of its base) on one dataset split.  A gate that
cannot be checked (no evaluation, no base, a missing metric) fails: a model
is never promoted on numbers nobody measured.  :func:`promotion_gate` adds
the defaults of ``llmline.yaml``'s ``promotion:`` section.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmline.errors import NotFoundError
from llmline.models.gates import Gate, GateFailure, check_gates
from llmline.models.info import GateCheck, ModelVersionInfo

if TYPE_CHECKING:
    from llmline.evaluation.store import EvalStore
    from llmline.workspace import Workspace

__all__ = ["MissingEvaluation", "evaluation_gate", "promotion_gate", "tuned_on"]


@dataclass(frozen=True)
class MissingEvaluation(GateFailure):
    """A gate that could not be checked; ``detail`` says what was missing."""

    detail: str = ""

    def __str__(self) -> str:
        return f"gate {self.gate} not checked: {self.detail}"


def evaluation_gate(
    store: EvalStore, gates: Sequence[Gate], *, dataset_ref: str, split: str = "eval"
) -> GateCheck:
    """A :data:`GateCheck` over the newest stored evaluations on
    ``dataset_ref`` (an exact ``NAME@VERSION``, as evaluations record it)
    and ``split``: the candidate's, and its base's for relative gates."""
    gates = list(gates)

    def missing(model_ref: str, of: str) -> str:
        return (
            f"no evaluation {of} {model_ref} on {dataset_ref} split {split!r}; run "
            f"`llmline eval run {model_ref} --dataset {dataset_ref} --split {split}`"
        )

    def newest(model_ref: str) -> Mapping[str, float] | None:
        try:
            return store.get(model_ref, dataset_ref, split).metrics
        except NotFoundError:
            return None

    def check(candidate: ModelVersionInfo) -> list[GateFailure]:
        if not gates:
            return []
        metrics = newest(candidate.ref)
        if metrics is None:
            return _unchecked(gates, None, missing(candidate.ref, "of"))
        base_metrics: Mapping[str, float] | None = None
        base_problem = None
        if any(g.relative_to == "base" for g in gates):
            if candidate.base is None:
                base_problem = f"{candidate.ref} has no base model to compare with"
            elif (base_metrics := newest(candidate.base)) is None:
                base_problem = missing(candidate.base, "of its base")
        failures: list[GateFailure] = []
        for gate in gates:  # in the order given, so messages read as configured
            if gate.relative_to == "base" and base_problem is not None:
                failures += _unchecked([gate], metrics, base_problem)
            else:
                failures += check_gates([gate], metrics, base_metrics)
        return failures

    return check


def promotion_gate(
    workspace: Workspace,
    gates: Sequence[Gate] | None = None,
    *,
    dataset_ref: str | None = None,
    split: str | None = None,
) -> GateCheck:
    """:func:`evaluation_gate` with the defaults of ``llmline.yaml``.

    ``gates`` defaults to ``promotion.gates``, ``split`` to
    ``promotion.split``; the dataset is ``dataset_ref``, else
    ``promotion.dataset``, else the one the candidate was tuned on (its
    registry metadata ``dataset``).  A ``NAME`` or ``NAME@latest`` resolves to
    the version it names now, since evaluations record exact versions.
    """
    from llmline.data.catalog import get_version
    from llmline.evaluation.store import EvalStore

    settings = workspace.settings.promotion
    chosen = list(gates) if gates is not None else settings.parsed_gates()
    chosen_split = split or settings.split
    configured = dataset_ref or settings.dataset
    store = EvalStore(workspace.metadata)

    def check(candidate: ModelVersionInfo) -> Sequence[GateFailure]:
        if not chosen:
            return []
        dataset = configured or tuned_on(candidate)
        if dataset is None:
            detail = (
                f"{candidate.ref} records no dataset it was tuned on; say which dataset's "
                "evaluations to read with --dataset or promotion.dataset in llmline.yaml"
            )
            return _unchecked(chosen, None, detail)
        exact = get_version(workspace, dataset).ref
        return evaluation_gate(store, chosen, dataset_ref=exact, split=chosen_split)(candidate)

    return check


def tuned_on(info: ModelVersionInfo) -> str | None:
    """The dataset ref in a version's metadata ``dataset`` (a string, or a
    mapping with ``ref``, as the registry's lineage reads it); None if none."""
    value = info.metadata.get("dataset")
    if isinstance(value, Mapping):
        value = value.get("ref")
    return value if isinstance(value, str) and value else None


def _unchecked(
    gates: Sequence[Gate], metrics: Mapping[str, float] | None, detail: str
) -> list[GateFailure]:
    """Failures of gates that could not be checked; ``value`` is the
    candidate's own number where it has one (only the base's is missing)."""
    out: list[GateFailure] = []
    for gate in gates:
        value = (metrics or {}).get(gate.metric)
        number = float(value) if isinstance(value, int | float) and math.isfinite(value) else None
        out.append(MissingEvaluation(gate, number, None, detail=detail))
    return out
