"""``llmline models``: import, list, show, alias, promote (gates, force),
rollback and events, with their --json shapes and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmline.models import ModelRegistry
from llmline.workspace import init_workspace

from .conftest import CLI

MODEL_KEYS = {
    "name", "version", "ref", "kind", "format", "uri", "source", "base", "content_hash",
    "description", "aliases", "metadata", "created_at",
}  # fmt: skip


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model folder tests/models writes too (whichever runs first)."""
    pytest.importorskip("torch")
    from llmline.testing.models import tiny_causal_lm

    target = tmp_path_factory.getbasetemp() / "tiny-smollm2"
    if not (target / "config.json").is_file():
        tiny_causal_lm(target)
    return target


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    init_workspace(tmp_path / "ws", load_sample_data=False).close()
    return tmp_path / "ws"


@pytest.fixture
def with_metrics(tmp_path: Path) -> Path:
    """A built dataset, a base model and two tuned versions (no weights) with
    stored evaluations on its eval split, which promotion gates read."""
    from llmline.data import build
    from llmline.evaluation import EvalResult, EvalStore
    from llmline.testing.workspace import synthetic_workspace

    with synthetic_workspace(tmp_path / "ws", questions=40) as workspace:
        dataset = build("python-faq", workspace=workspace).ref
        registry = ModelRegistry(workspace.metadata)
        store = EvalStore(workspace.metadata)
        base = registry.register(
            "base", kind="base", uri="/b", format="hf-safetensors", source="test"
        )
        store.save(EvalResult(base.ref, dataset, "eval", {"rougeL": 0.30}))
        for rouge in (0.35, 0.20):
            tuned = registry.register(
                "faq", kind="tuned", uri=f"/t{rouge}", format="peft-lora", source="run:x",
                base=base.ref, metadata={"dataset": dataset},
            )  # fmt: skip
            store.save(EvalResult(tuned.ref, dataset, "eval", {"rougeL": rouge}))
    return tmp_path / "ws"


def test_import_list_show_alias(cli: CLI, ws: Path, tiny_model: Path) -> None:
    imported = cli("models", "import", str(tiny_model), "--name", "tiny", "--json")
    assert imported.code == 0, imported.err
    doc = imported.json()
    assert set(doc) == MODEL_KEYS | {"status"}
    assert (doc["ref"], doc["status"], doc["kind"]) == ("tiny@1", "created", "base")
    assert doc["metadata"]["architecture"] == "LlamaForCausalLM"

    again = cli("models", "import", str(tiny_model), "--name", "tiny")
    assert again.code == 0 and "unchanged, same content as tiny@1" in again.out

    listed = cli("models", "list", "--json").json()
    assert [m["ref"] for m in listed] == ["tiny@1"] and set(listed[0]) == MODEL_KEYS
    assert cli("models", "list", "tiny", "--json").json()[0]["ref"] == "tiny@1"
    assert "tiny" in cli("models", "list").out

    assert cli("models", "alias", "tiny@1", "staging").out.strip() == "tiny@staging -> tiny@1"
    shown = cli("models", "show", "tiny@staging", "--verify", "--json").json()
    assert shown["aliases"] == ["staging"] and shown["verified"] is True
    text = cli("models", "show", "tiny").out
    assert "LlamaForCausalLM" in text and "staging" in text


def test_promote_gates_force_rollback_events(cli: CLI, with_metrics: Path) -> None:
    ok = cli("models", "promote", "faq@1", "--gate", "rougeL>=base+0.02", "--json")
    assert ok.code == 0, ok.err
    assert ok.json() == {
        "model": "faq", "champion": "faq@1", "previous": None, "action": "promote",
        "changed": True, "failures": [],
    }  # fmt: skip

    refused = cli("models", "promote", "faq@2", "--gate", "rougeL>=base")
    assert refused.code == 1
    assert refused.err.count("\n") == 1
    assert "rougeL 0.2 < 0.3 required (base 0.3 +0)" in refused.err
    assert cli("models", "show", "faq@champion", "--json").json()["version"] == 1

    no_reason = cli("models", "promote", "faq@2", "--gate", "rougeL>=base", "--force")
    assert no_reason.code == 1 and "needs a reason" in no_reason.err

    forced = cli(
        "models", "promote", "faq@2", "--gate", "rougeL>=base", "--force", "--reason", "demo"
    )
    assert forced.code == 0, forced.err
    assert "force-promote: champion faq@2 (was faq@1)" in forced.out
    assert "overridden gate: rougeL" in forced.err

    back = cli("models", "rollback", "faq", "--json").json()
    assert (back["champion"], back["previous"], back["action"]) == ("faq@1", 2, "rollback")

    events = cli("models", "events", "faq", "--json").json()
    assert [(e["action"], e["from_version"], e["to_version"]) for e in events] == [
        ("promote", None, 1),
        ("force-promote", 1, 2),
        ("rollback", 2, 1),
    ]
    assert events[1]["reason"] == "demo" and events[1]["details"]["failures"]
    assert "force-promote" in cli("models", "events", "faq").out


def test_promote_reads_the_configured_gates(cli: CLI, with_metrics: Path) -> None:
    config = with_metrics / "llmline.yaml"
    config.write_text(config.read_text() + "promotion:\n  gates: ['rougeL>=base+0.1']\n")
    refused = cli("models", "promote", "faq@1")  # 0.35 < 0.30 + 0.1
    assert refused.code == 1
    assert "rougeL 0.35 < 0.4 required" in refused.err
    assert cli("models", "promote", "faq@1", "--gate", "rougeL>=0.3").code == 0


def test_a_gate_without_an_evaluation_fails(cli: CLI, with_metrics: Path) -> None:
    result = cli("models", "promote", "faq@1", "--gate", "rougeL>=0", "--split", "train")
    assert result.code == 1
    assert "not checked: no evaluation of faq@1" in result.err
    assert "llmline eval run faq@1" in result.err


def test_invalid_configured_gate_fails_at_load(cli: CLI, with_metrics: Path) -> None:
    config = with_metrics / "llmline.yaml"
    config.write_text(config.read_text() + "promotion:\n  gates: ['rougeL > base']\n")
    result = cli("models", "list")
    assert result.code == 1 and result.err.count("\n") == 1
    assert "promotion.gates" in result.err and "invalid gate" in result.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("import", "HuggingFaceTB/SmolLM2-135M-Instruct"), "llmline runs offline"),
        (("import", "no-such-model"), "no such file, folder or built-in model"),
        (("show", "bse"), "did you mean base?"),
        (("show", "base@9"), "has no version 9"),
        (("promote", "faq@1", "--gate", "rougeL>0.1"), "invalid gate"),
        (("alias", "faq@1", "champion"), "moves only by promotion"),
        (("rollback", "faq"), "no earlier champion"),
    ],
)
def test_errors_are_one_line(
    cli: CLI, with_metrics: Path, args: tuple[str, ...], message: str
) -> None:
    result = cli("models", *args)
    assert result.code == 1
    assert result.err.startswith("error: ") and result.err.count("\n") == 1
    assert message in result.err
