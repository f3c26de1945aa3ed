"""LoRA supervised fine-tuning (see :func:`llmline.training.train_lora`)."""

from __future__ import annotations

from llmline.training.lora.config import LoraTuneConfig

__all__ = ["LoraTuneConfig"]
