"""The model registry over a real SQLite workspace: references, aliases,
gated promotion, forced promotion, rollback, the audit trail and lineage.
No torch here: versions are registered with made-up folders."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmline.errors import NotFoundError, UserError
from llmline.models import (
    CHAMPION,
    Gate,
    GateFailedError,
    GateFailure,
    ModelError,
    ModelRegistry,
    ModelVersionInfo,
    check_gates,
    folder_publisher,
)
from llmline.storage.lineage import ArtifactRef, walk
from llmline.workspace import Workspace, init_workspace


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = init_workspace(tmp_path / "ws", load_sample_data=False)
    yield workspace
    workspace.close()


@pytest.fixture
def registry(ws: Workspace) -> ModelRegistry:
    return ModelRegistry(ws.metadata)


def _base(registry: ModelRegistry, name: str = "smol", n: int = 1, **metrics: float) -> None:
    for i in range(n):
        registry.register(
            name,
            kind="base",
            uri=f"/models/{name}/{i}",
            format="hf-safetensors",
            source="test",
            content_hash=f"{name}-{i}".ljust(64, "0"),
            metadata={"metrics": metrics} if metrics else {},
        )


def _tuned(registry: ModelRegistry, **metrics: float) -> ModelVersionInfo:
    return registry.register(
        "smol-faq",
        kind="tuned",
        uri="/models/smol-faq/x",
        format="peft-lora",
        base="smol@1",
        source="run:r1",
        metadata={"metrics": metrics},
    )


# -- references ---------------------------------------------------------------------
def test_refs_versions_and_aliases(registry: ModelRegistry) -> None:
    _base(registry, n=3)
    assert [v.version for v in registry.versions("smol")] == [1, 2, 3]
    assert registry.get("smol").version == 3
    assert registry.get("smol@latest").version == 3
    assert registry.get("smol@2").uri == "/models/smol/1"
    info = registry.set_alias("smol@2", "staging")
    assert info.aliases == ["staging"]
    assert registry.get("smol@staging").version == 2
    registry.set_alias("smol@3", "staging")  # aliases move
    assert registry.get("smol@staging").version == 3
    assert registry.get("smol@2").aliases == []
    assert [(e.action, e.from_version, e.to_version) for e in registry.events("smol")] == [
        ("alias", None, 2),
        ("alias", 2, 3),
    ]
    doc = registry.get("smol@staging").to_dict()
    assert doc["ref"] == "smol@3" and doc["aliases"] == ["staging"] and doc["kind"] == "base"


def test_list_gives_the_latest_version_of_each_model(registry: ModelRegistry) -> None:
    _base(registry, "b-model", n=2)
    _base(registry, "a-model", n=1)
    assert [i.ref for i in registry.list()] == ["a-model@1", "b-model@2"]


def test_unknown_refs_name_close_matches(registry: ModelRegistry) -> None:
    _base(registry, "smollm2-135m-instruct", n=2)
    registry.set_alias("smollm2-135m-instruct@1", "staging")
    with pytest.raises(NotFoundError, match="did you mean smollm2-135m-instruct"):
        registry.get("smollm2-135m-instruc")
    with pytest.raises(NotFoundError, match=r"no version 7 \(versions: 1, 2\)"):
        registry.get("smollm2-135m-instruct@7")
    with pytest.raises(NotFoundError, match="did you mean staging"):
        registry.get("smollm2-135m-instruct@stagin")
    with pytest.raises(LookupError):  # NotFoundError is a LookupError for API callers
        registry.events("nope")


def test_same_content_is_registered_once(registry: ModelRegistry) -> None:
    first = registry.register(
        "m", kind="base", uri="/a", format="hf-safetensors", source="s", content_hash="h" * 64
    )
    again = registry.register(
        "m", kind="base", uri="/b", format="hf-safetensors", source="s", content_hash="h" * 64
    )
    assert first.created and not again.created
    assert again.ref == first.ref == "m@1" and again.uri == "/a"
    assert registry.find_by_hash("m", "h" * 64) == first
    assert registry.find_by_hash("other", "h" * 64) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "org/model"}, "invalid model name"),
        ({"name": "m@2"}, "invalid model name 'm@2'"),
        ({"kind": "huge"}, "invalid model kind"),
        ({"format": ""}, "needs a format"),
        ({"kind": "tuned"}, "needs the base version"),
    ],
)
def test_register_validates(registry: ModelRegistry, kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "name": "m", "kind": "base", "uri": "/x", "format": "hf-safetensors", "source": "s",
    }  # fmt: skip
    args.update(kwargs)
    with pytest.raises(ModelError, match=message):
        registry.register(args.pop("name"), **args)


def test_a_model_keeps_its_kind(registry: ModelRegistry) -> None:
    _base(registry)
    with pytest.raises(ModelError, match="is a base model, not tuned"):
        registry.register(
            "smol", kind="tuned", uri="/x", format="peft-lora", source="s", base="smol@1"
        )


def test_publisher_skips_numbers_left_by_killed_processes(ws: Workspace) -> None:
    registry = ModelRegistry(ws.metadata)
    stale = Path(ws.artifacts.root) / "models" / "m" / "1"
    stale.mkdir(parents=True)  # a folder whose registration never committed
    with ws.artifacts.stage() as staging:
        (staging / "config.json").write_text("{}")
        info = registry.register(
            "m",
            kind="base",
            uri=folder_publisher(ws.artifacts, staging, "m"),
            format="hf-safetensors",
            source="s",
        )
    assert info.version == 2
    assert Path(info.uri) == Path(ws.artifacts.root) / "models" / "m" / "2"
    assert (Path(info.uri) / "config.json").is_file()


# -- promotion ----------------------------------------------------------------------
def test_champion_moves_only_by_promotion(registry: ModelRegistry) -> None:
    _base(registry)
    with pytest.raises(ModelError, match="moves only by promotion"):
        registry.set_alias("smol@1", CHAMPION)
    result = registry.promote("smol@1")
    assert result.changed and result.previous is None and result.action == "promote"
    assert registry.get("smol@champion").version == 1
    again = registry.promote("smol@champion")
    assert not again.changed  # nothing recorded twice
    assert [e.action for e in registry.events("smol")] == ["promote"]


def test_failing_gate_refuses_promotion_and_names_the_numbers(registry: ModelRegistry) -> None:
    _base(registry, rougeL=0.30, exact_match=0.10)
    tuned = _tuned(registry, rougeL=0.31, exact_match=0.05)
    gates = [Gate.parse("rougeL>=base+0.02"), Gate.parse("exact_match>=0.08")]
    with pytest.raises(GateFailedError) as caught:
        registry.promote(tuned.ref, gates=registry.metrics_gate(gates))
    message = str(caught.value)
    assert "rougeL 0.31 < 0.32 required (base 0.3 +0.02)" in message
    assert "exact_match 0.05 < 0.08 required" in message
    assert "\n" not in message
    assert isinstance(caught.value, UserError) and isinstance(caught.value, ValueError)
    assert [f.gate.metric for f in caught.value.failures] == ["rougeL", "exact_match"]
    with pytest.raises(NotFoundError):
        registry.get("smol-faq@champion")
    assert registry.events("smol-faq") == []

    passing = [Gate.parse("rougeL>=base"), Gate.parse("exact_match>=0.05")]
    assert registry.promote(tuned.ref, gates=registry.metrics_gate(passing)).changed
    assert registry.get("smol-faq@champion").version == 1


def test_force_needs_a_reason_and_is_audited(registry: ModelRegistry, monkeypatch: Any) -> None:
    _base(registry, rougeL=0.30)
    tuned = _tuned(registry, rougeL=0.10)
    failures = check_gates([Gate(metric="rougeL", relative_to="base")], {"rougeL": 0.1}, {})
    with pytest.raises(ModelError, match="needs a reason"):
        registry.promote(tuned.ref, gates=failures, force=True)
    unchecked: Any = [Gate(metric="rougeL")]  # gates, not results: a caller's mistake
    with pytest.raises(TypeError, match="metrics_gate"):
        registry.promote(tuned.ref, gates=unchecked)
    with pytest.raises(ModelError, match="needs a reason"):
        registry.promote(tuned.ref, gates=failures, force=True, reason="  ")
    monkeypatch.setenv("LLMLINE_ACTOR", "alice")
    result = registry.promote(tuned.ref, gates=failures, force=True, reason="hotfix for #12")
    assert result.action == "force-promote" and result.changed
    assert [f.gate.metric for f in result.failures] == ["rougeL"]
    [event] = registry.events("smol-faq")
    assert (event.action, event.reason, event.actor) == ("force-promote", "hotfix for #12", "alice")
    assert event.details["failures"][0]["metric"] == "rougeL"
    assert event.to_dict()["to_version"] == 1


def test_rollback_walks_back_through_champions(registry: ModelRegistry) -> None:
    _base(registry, n=3)
    with pytest.raises(ModelError, match="no earlier champion"):
        registry.rollback("smol")
    for version in (1, 2, 3):
        registry.promote(f"smol@{version}")
    assert registry.rollback("smol").version.version == 2
    back = registry.rollback("smol", reason="2 is also bad")
    assert (back.version.version, back.previous, back.action) == (1, 2, "rollback")
    assert registry.get("smol@champion").version == 1
    with pytest.raises(ModelError, match="no earlier champion"):
        registry.rollback("smol")
    registry.promote("smol@3")  # 1 -> 3; a rollback now returns to 1, not to 2
    assert registry.rollback("smol").version.version == 1
    actions = [(e.action, e.from_version, e.to_version) for e in registry.events("smol")]
    assert actions == [
        ("promote", None, 1),
        ("promote", 1, 2),
        ("promote", 2, 3),
        ("rollback", 3, 2),
        ("rollback", 2, 1),
        ("promote", 1, 3),
        ("rollback", 3, 1),
    ]


# -- lineage ------------------------------------------------------------------------
def test_register_records_lineage(ws: Workspace, registry: ModelRegistry) -> None:
    _base(registry)
    tuned = registry.register(
        "smol-faq",
        kind="tuned",
        uri="/x",
        format="peft-lora",
        base="smol@latest",
        source="run:r1",
        metadata={
            "run": "r1",
            "dataset": "python-faq@20261123T000000Z-abc",
            "template": {"ref": "stackoverflow-python@1"},
        },
    )
    assert tuned.base == "smol@1"
    with ws.metadata.read_session() as session:
        graph = walk(session, ArtifactRef("model", "smol-faq@1"))
    edges = {(str(e.src), e.relation) for e in graph.upstream}
    assert edges == {
        ("model:smol@1", "base_of"),
        ("run:r1", "produced"),
        ("dataset:python-faq@20261123T000000Z-abc", "trained"),
        ("prompt:stackoverflow-python@1", "formatted"),
    }


# -- gates --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "gate"),
    [
        ("exact_match>=0.2", Gate(metric="exact_match", op=">=", threshold=0.2)),
        ("loss <= 1.5", Gate(metric="loss", op="<=", threshold=1.5)),
        ("rougeL>=base", Gate(metric="rougeL", relative_to="base")),
        ("rougeL>=base+0.02", Gate(metric="rougeL", threshold=0.02, relative_to="base")),
        ("loss<=base-0.1", Gate(metric="loss", op="<=", threshold=-0.1, relative_to="base")),
    ],
)
def test_gate_parse(text: str, gate: Gate) -> None:
    assert Gate.parse(text) == gate
    assert Gate.parse(str(gate)) == gate


@pytest.mark.parametrize(
    "text", ["rougeL", "rougeL>0.2", "rougeL>=", ">=0.2", "x>=base*2", "x>=1e"]
)
def test_gate_parse_rejects(text: str) -> None:
    with pytest.raises(ModelError, match="invalid gate"):
        Gate.parse(text)


def test_check_gates() -> None:
    gates = [
        Gate(metric="acc", threshold=0.5),
        Gate(metric="loss", op="<=", threshold=-0.1, relative_to="base"),
    ]
    assert check_gates(gates, {"acc": 0.5, "loss": 0.9}, {"loss": 1.0}) == []
    [failure] = check_gates(gates, {"acc": 0.7, "loss": 0.95}, {"loss": 1.0})
    assert failure.gate.metric == "loss" and math.isclose(failure.required or 0, 0.9)
    assert str(failure) == "loss 0.95 > 0.9 required (base 1 -0.1)"
    missing = check_gates(gates, {"acc": math.nan}, {})
    assert [str(f) for f in missing] == [
        "acc is missing from the candidate's metrics (gate acc>=0.5)",
        "loss is missing from the candidate's metrics (gate loss<=base-0.1)",
    ]
    [no_base] = check_gates(gates[1:], {"loss": 0.2}, None)
    assert isinstance(no_base, GateFailure) and "base model's metrics" in str(no_base)
    assert no_base.to_dict()["value"] == 0.2
