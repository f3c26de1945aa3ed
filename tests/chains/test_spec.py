"""Chain files: the shipped example and what invalid chains are told."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from llmline.chains import example_chains, find_chain, load_chain
from llmline.chains.spec import ModelStep, ParseStep, type_adapter
from llmline.errors import ConfigError, NotFoundError


def write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump(document) if not isinstance(document, str) else document)
    return path


def chain(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "c", "inputs": {"text": "str"}, "steps": list(steps), **extra}


def test_the_shipped_calorie_chain_loads() -> None:
    assert "calories" in example_chains()
    spec = load_chain(find_chain("calories"))
    assert [s.kind for s in spec.steps] == ["prompt", "model", "parse", "tool", "aggregate"]
    assert spec.output_name == "total_kcal" and spec.first_input == "meal"
    model = spec.steps[1]
    assert isinstance(model, ModelStep) and model.model.max_tokens == 64
    parse = spec.steps[2]
    assert isinstance(parse, ParseStep) and parse.schema_ == "list[str]"


def test_a_model_step_may_name_its_deployment_in_short(tmp_path: Path) -> None:
    spec = load_chain(write(tmp_path, chain({"id": "m", "model": "faq"})))
    step = spec.steps[0]
    assert isinstance(step, ModelStep) and step.model.deployment == "faq"
    assert spec.output_name == "m"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (chain({"id": "x", "frobnicate": 1}), "a step needs one of prompt, template, model"),
        (chain({"id": "p", "prompt": "about {topic}"}), "step 'p' uses undefined topic"),
        (chain({"id": "t", "tool": "calories", "input": "later"}), "reads 'later', which is not"),
        (chain({"id": "a", "parse": "json"}, {"id": "a", "parse": "list"}), "two steps have"),
        (chain({"id": "r", "parse": "regex"}), "parse: regex needs a pattern"),
        (chain({"id": "r", "parse": "regex", "pattern": "("}), "invalid pattern"),
        (chain({"id": "j", "parse": "json", "schema": "tuple[int]"}), "unknown type"),
        (chain({"id": "j", "parse": "yaml"}), "steps.0.parse.parse: Input should be"),
        (chain({"id": "m", "model": {}}, output="nope"), "output 'nope' is not"),
        (chain({"id": "bad id", "model": {}}), "'bad id' is not a name"),
        ({"name": "c", "inputs": {}, "steps": [{"id": "m", "model": {}}]}, "inputs"),
        (
            {"name": "c", "inputs": {"n": "decimal"}, "steps": [{"id": "m", "model": {}}]},
            "unknown type 'decimal'",
        ),
        ("- just\n- a list\n", "must be a mapping"),
        ("name: [unclosed\n", "is not valid YAML"),
    ],
)
def test_invalid_chains_are_named(tmp_path: Path, document: Any, message: str) -> None:
    with pytest.raises(
        ConfigError, match=r"invalid chain|must be a mapping|not valid YAML"
    ) as info:
        load_chain(write(tmp_path, document))
    assert message in str(info.value)


def test_a_missing_chain_names_the_shipped_ones(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"no chain file nope .*shipped: calories"):
        find_chain("nope", tmp_path)
    with pytest.raises(ConfigError, match="cannot read chain"):
        load_chain(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("type_text", "value", "expected"),
    [
        ("list[str]", ["a"], ["a"]),
        ("float", "2.5", 2.5),
        ("dict[str, int]", {"a": "1"}, {"a": 1}),
        ("list[dict[str, float]]", [{"k": 1}], [{"k": 1.0}]),
        ("any", None, None),
    ],
)
def test_types_are_written_as_in_python(type_text: str, value: Any, expected: Any) -> None:
    assert type_adapter(type_text).validate_python(value) == expected
