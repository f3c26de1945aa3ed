"""Settings of a LoRA supervised fine-tuning run.

Imports neither torch nor transformers, so a pipeline or the CLI can
validate a tuning config where the ``tune`` extra is not installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llmline._pydantic import problems
from llmline.errors import ConfigError

__all__ = ["TRAJECTORY_FIELDS", "LoraTuneConfig"]


class LoraTuneConfig(BaseModel):
    """Hyper-parameters of :func:`llmline.training.train_lora`.

    ``batch_size`` counts examples per optimizer step, with or without
    ``packing``.  Packing concatenates a step's examples into rows of up to
    ``max_seq_length`` tokens (each example still attends only to itself);
    without it, batches are padded to their longest example and the order
    groups similar lengths.  Both compute the same loss.  Padding is the
    default: on SmolLM2-135M with ~85-token examples it was as fast as
    packing (see bench/train_throughput.py), and it does not depend on
    transformers deriving per-example masks from position ids.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    train_steps: int = Field(default=200, gt=0, description="optimizer steps to run")
    evaluation_interval: int = Field(default=20, gt=0, description="steps between eval passes")
    learning_rate: float = Field(default=3e-4, gt=0, allow_inf_nan=False)
    lora_rank: int = Field(default=8, ge=1)
    lora_alpha: int = Field(default=16, gt=0)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: tuple[str, ...] = Field(default=("q_proj", "v_proj"), min_length=1)
    batch_size: int = Field(default=4, ge=1, description="examples per optimizer step")
    max_seq_length: int = Field(default=256, ge=8, description="tokens per example, at most")
    checkpoint_every: int = Field(default=50, gt=0)
    seed: int = Field(default=42, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    packing: bool = Field(default=False, description="concatenate examples instead of padding")
    warmup_steps: int = Field(
        default=10, ge=0, description="linear warm-up steps (capped at train_steps)"
    )
    weight_decay: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    max_grad_norm: float = Field(default=1.0, gt=0, allow_inf_nan=False)

    @classmethod
    def parse(cls, data: Mapping[str, Any], *, source: str = "tuning config") -> LoraTuneConfig:
        """Validate ``data`` (a YAML mapping, CLI options); errors as one ConfigError."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"{source}: {problems(exc, 'config')}") from None

    @field_validator("target_modules")
    @classmethod
    def _names_are_not_blank(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not name.strip() for name in value):
            raise ValueError("target_modules must not contain blank names")
        if len(set(value)) != len(value):
            raise ValueError("target_modules must not repeat a name")
        return value


#: Fields that change what a run computes; a checkpoint written under other
#: values cannot be resumed (the others, such as how often to evaluate,
#: may change between a run and its resumption).
TRAJECTORY_FIELDS = frozenset(LoraTuneConfig.model_fields) - {
    "evaluation_interval",
    "checkpoint_every",
    "device",
}
