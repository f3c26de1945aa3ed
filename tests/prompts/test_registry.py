"""Prompt templates: immutable versions, aliases, references, rendering."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from llmline.errors import NotFoundError, TemplateError
from llmline.prompts import PromptRef, PromptRegistry, Template
from llmline.storage.db import MetadataStore


@pytest.fixture
def registry(tmp_path: Path) -> PromptRegistry:
    return PromptRegistry(MetadataStore(f"sqlite:///{tmp_path}/meta.db"))


def test_versions_are_numbered_and_immutable(registry: PromptRegistry) -> None:
    v1, created1 = registry.create("qa", "Q: {question}")
    same, created_again = registry.create("qa", "Q: {question}")
    v2, created2 = registry.create("qa", "Question: {question}\nContext: {context}")
    assert (v1.version, created1) == (1, True)
    assert (same.version, created_again) == (1, False)
    assert (v2.version, created2) == (2, True)
    assert v2.variables == ["question", "context"]
    assert registry.get("qa@1").text == "Q: {question}"  # v1 unchanged by v2
    assert registry.get("qa").version == 2
    assert registry.get("qa@latest").version == 2
    assert [v.version for v in registry.versions("qa")] == [1, 2]


def test_aliases_move_between_versions(registry: PromptRegistry) -> None:
    registry.create("qa", "Q: {question}")
    registry.create("qa", "Question: {question}")
    registry.set_alias("qa@1", "production")
    assert registry.get("qa@production").version == 1
    assert registry.get("qa@1").aliases == ["production"]
    registry.set_alias("qa@2", "production")
    assert registry.get("qa@production").version == 2
    assert registry.get("qa@1").aliases == []
    assert [p.name for p in registry.list()] == ["qa"]


@pytest.mark.parametrize(
    "ref, message",
    [
        ("missing", "no prompt template named 'missing'"),
        ("qa@staging", "has no alias 'staging'"),
        ("qa@9", "has no version '9'"),
    ],
)
def test_unknown_references(registry: PromptRegistry, ref: str, message: str) -> None:
    registry.create("qa", "Q: {question}")
    with pytest.raises(NotFoundError, match=message):
        registry.get(ref)


def test_bad_names_and_aliases(registry: PromptRegistry) -> None:
    registry.create("qa", "Q: {question}")
    with pytest.raises(TemplateError, match="invalid prompt template name"):
        registry.create("has space", "Q: {question}")
    with pytest.raises(TemplateError, match="invalid alias"):
        registry.set_alias("qa@1", "7")
    with pytest.raises(TemplateError, match="invalid alias"):
        registry.set_alias("qa@1", "bad alias")


def test_ref_parsing() -> None:
    assert PromptRef.parse("qa@production") == PromptRef("qa", "production")
    assert str(PromptRef.parse("qa@3")) == "qa@3"
    assert PromptRef.parse("qa").selector is None


def test_render_scalar_and_arrow_agree() -> None:
    template = Template.parse("Q: {question}\n{{literal}} ctx={context} again={question}")
    assert template.variables == ["question", "context"]
    one = template.render({"question": "why?", "context": "c"})
    assert one == "Q: why?\n{literal} ctx=c again=why?"
    many = template.render_arrays(
        {"question": pa.array(["why?", "how?"]), "context": pa.array(["c", "d"])}
    )
    assert many.to_pylist() == [one, "Q: how?\n{literal} ctx=d again=how?"]
    with pytest.raises(TemplateError, match="no value for template variable"):
        template.render({"question": "x"})
