"""A chain's YAML, as pydantic models.

.. code-block:: yaml

    name: calories
    inputs: {meal: str}
    steps:
      - {id: ask, prompt: "List the foods in: {meal}", output: prompt}
      - {id: extract, model: {max_tokens: 64}, output: reply}      # input: the last output
      - {id: foods, parse: json, schema: "list[str]", output: foods}
      - {id: lookup, tool: calories, map: true, output: items}
      - {id: total, aggregate: sum, field: kcal, schema: float, output: total_kcal}
    output: total_kcal

A step reads ``input`` (an earlier output or an input; default: the
previous step's output) and writes ``output`` (default: its ``id``).  Types
are written ``str``, ``int``, ``float``, ``bool``, ``any``, ``list[T]`` and
``dict[str, T]``; a parsed or aggregated value is validated against its
``schema`` with pydantic.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from llmline._pydantic import problems
from llmline.errors import ConfigError, NotFoundError, TemplateError
from llmline.prompts.template import Template

__all__ = [
    "AggregateStep",
    "ChainSpec",
    "FewShot",
    "ModelCall",
    "ModelStep",
    "ParseStep",
    "PromptStep",
    "Step",
    "ToolStep",
    "example_chains",
    "find_chain",
    "load_chain",
    "type_adapter",
]

_SCALARS: dict[str, Any] = {"str": str, "int": int, "float": float, "bool": bool, "any": Any}
_GENERIC = re.compile(r"^(list|dict)\[(.*)\]$")
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _python_type(text: str) -> Any:
    text = text.replace(" ", "")
    if text in _SCALARS:
        return _SCALARS[text]
    match = _GENERIC.match(text)
    if match and match.group(1) == "list":
        return list[_python_type(match.group(2))]  # type: ignore[misc]
    if match and match.group(2).startswith("str,"):
        return dict[str, _python_type(match.group(2)[4:])]  # type: ignore[misc]
    raise ValueError(
        f"unknown type {text!r}: use str, int, float, bool, any, list[T] or dict[str, T]"
    )


@cache
def type_adapter(text: str) -> TypeAdapter[Any]:
    """The validator of a type written as in a chain file (``list[str]``)."""
    return TypeAdapter(_python_type(text))


def _check_type(value: str | None) -> str | None:
    if value is not None:
        type_adapter(value)
    return value


class _Step(BaseModel, ABC):
    model_config = ConfigDict(extra="forbid")

    id: str
    input: str | None = Field(default=None, description="Default: the previous step's output")
    output: str | None = Field(default=None, description="Default: the step's id")

    @field_validator("id", "output")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not _ID.match(value):
            raise ValueError(f"{value!r} is not a name (letters, digits, _)")
        return value

    @property
    @abstractmethod
    def kind(self) -> str:
        """The step's ``kind`` in the YAML (prompt, model, parse, tool, aggregate)."""

    @property
    def output_name(self) -> str:
        return self.output or self.id


class PromptStep(_Step):
    """Renders a ``{var}`` template (or a prompt-registry template) from the
    chain's inputs and earlier outputs; its output is the text."""

    prompt: str | None = None
    template: str | None = Field(default=None, description="Prompt registry ref, NAME@ALIAS")
    system: str | None = Field(default=None, description="System message sent with it")

    @model_validator(mode="after")
    def _one_source(self) -> PromptStep:
        if (self.prompt is None) == (self.template is None):
            raise ValueError("a prompt step has either prompt (text) or template (a registry ref)")
        if self.prompt is not None:
            try:
                Template.parse(self.prompt)
            except TemplateError as exc:
                raise ValueError(str(exc)) from None
        return self

    @property
    def kind(self) -> str:
        return "prompt"


class FewShot(BaseModel):
    """One worked example: a user turn and the assistant's answer to it.
    Small models follow examples in the chat far better than instructions."""

    model_config = ConfigDict(extra="forbid")

    user: str
    assistant: str


class ModelCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deployment: str | None = Field(
        default=None, description="Deployment or model ref; default: the one the run is given"
    )
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0, le=2)
    system: str | None = None
    examples: list[FewShot] = Field(
        default_factory=list, description="Worked examples, sent as earlier chat turns"
    )


class ModelStep(_Step):
    """Sends its input (a prompt's text) as the user message; output: the reply text."""

    model: ModelCall = Field(default_factory=ModelCall)

    @field_validator("model", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"deployment": value}
        return {} if value is None else value

    @property
    def kind(self) -> str:
        return "model"


class ParseStep(_Step):
    """Turns text into a typed value: ``json`` (the first JSON value in it),
    ``list`` (lines, bullets or commas), ``regex`` (``pattern``'s matches:
    group 1 if it has one) or ``number`` (the first number)."""

    parse: Literal["json", "list", "regex", "number"]
    pattern: str | None = None
    schema_: str | None = Field(default=None, alias="schema", description="Type of the value")

    @field_validator("schema_")
    @classmethod
    def _schema(cls, value: str | None) -> str | None:
        return _check_type(value)

    @model_validator(mode="after")
    def _pattern(self) -> ParseStep:
        if (self.parse == "regex") != (self.pattern is not None):
            raise ValueError("parse: regex needs a pattern, and only it")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"invalid pattern: {exc}") from None
        return self

    @property
    def kind(self) -> str:
        return "parse"


class ToolStep(_Step):
    """Calls a registered tool with its input (``map: true``: once per item)."""

    tool: str
    map: bool = False
    argument: str | None = Field(
        default=None, description="Argument the value is passed as (default: the first)"
    )
    on_error: Literal["fail", "skip"] = Field(
        default="fail", description="skip: leave failed items out (with map: true)"
    )

    @property
    def kind(self) -> str:
        return "tool"


class AggregateStep(_Step):
    """Combines a list: ``sum``, ``count``, ``mean``, ``min``, ``max`` (of
    ``field`` when the items are objects) or ``join`` (text)."""

    aggregate: Literal["sum", "count", "mean", "min", "max", "join"]
    field: str | None = None
    separator: str = ", "
    schema_: str | None = Field(default=None, alias="schema")

    @field_validator("schema_")
    @classmethod
    def _schema(cls, value: str | None) -> str | None:
        return _check_type(value)

    @property
    def kind(self) -> str:
        return "aggregate"


_KINDS = ("prompt", "template", "model", "parse", "tool", "aggregate")


def _step_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return str(getattr(value, "kind", None))
    if not isinstance(value, dict):
        return None
    found = [k for k in _KINDS if k in value]
    if not found:
        return None
    return "prompt" if found[0] == "template" else found[0]


Step = Annotated[
    Annotated[PromptStep, Tag("prompt")]
    | Annotated[ModelStep, Tag("model")]
    | Annotated[ParseStep, Tag("parse")]
    | Annotated[ToolStep, Tag("tool")]
    | Annotated[AggregateStep, Tag("aggregate")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step needs one of prompt, template, model, parse, tool, aggregate",
    ),
]


class ChainSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    inputs: dict[str, str] = Field(min_length=1, description="Input name → type")
    steps: list[Step] = Field(min_length=1)
    output: str | None = Field(default=None, description="Default: the last step's output")

    @field_validator("inputs")
    @classmethod
    def _input_types(cls, value: dict[str, str]) -> dict[str, str]:
        for name, type_text in value.items():
            if not _ID.match(name):
                raise ValueError(f"input {name!r} is not a name (letters, digits, _)")
            _check_type(type_text)
        return value

    @model_validator(mode="after")
    def _references(self) -> ChainSpec:
        """Every reference names an input or an earlier output."""
        known = set(self.inputs)
        previous: str | None = next(iter(self.inputs))
        ids: set[str] = set()
        for step in self.steps:
            if step.id in ids:
                raise ValueError(f"two steps have the id {step.id!r}")
            ids.add(step.id)
            source = step.input or previous
            if source not in known:
                raise ValueError(f"step {step.id!r} reads {source!r}, which is not defined before")
            if isinstance(step, PromptStep) and step.prompt is not None:
                missing = [v for v in Template.parse(step.prompt).variables if v not in known]
                if missing:
                    raise ValueError(f"step {step.id!r} uses undefined {', '.join(missing)}")
            known.add(step.output_name)
            previous = step.output_name
        if self.output is not None and self.output not in known:
            raise ValueError(f"output {self.output!r} is not an input or a step's output")
        return self

    @property
    def output_name(self) -> str:
        return self.output or self.steps[-1].output_name

    @property
    def first_input(self) -> str:
        return next(iter(self.inputs))


def load_chain(path: Path) -> ChainSpec:
    """Read and validate a chain file (ConfigError names what is wrong)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read chain {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"chain {path} is not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"chain {path} must be a mapping with name, inputs and steps")
    try:
        return ChainSpec.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(f"invalid chain {path}: {problems(exc, 'chain')}") from None


def example_chains() -> dict[str, Path]:
    """The shipped example chains by name (``calories``)."""
    from importlib import resources

    folder = Path(str(resources.files("llmline.chains").joinpath("examples")))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def find_chain(name_or_path: str, root: Path | None = None) -> Path:
    """A chain file: a path (relative to ``root``, default the current
    directory), else the shipped example of that name."""
    path = Path(name_or_path)
    if not path.is_absolute() and root is not None:
        path = root / path
    if path.is_file():
        return path
    examples = example_chains()
    if name_or_path in examples:
        return examples[name_or_path]
    raise NotFoundError(
        f"no chain file {name_or_path} and no shipped chain of that name "
        f"(shipped: {', '.join(examples) or 'none'})"
    )
