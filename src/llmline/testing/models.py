"""Tiny real models for tests: a randomly initialised Llama with SmolLM2's
tokenizer and chat template.

It runs the same code paths as the embedded base model (tokenizer, chat
template, generation, LoRA) in milliseconds instead of seconds; its output
is noise, which is what tests that only need *a* model want.
"""

from __future__ import annotations

from pathlib import Path

from llmline.models.builtin import SMOLLM2_GGUF, smollm2_gguf_path

__all__ = ["SMOLLM2_GGUF", "smollm2_gguf_path", "tiny_causal_lm"]


def tiny_causal_lm(
    target: Path, *, seed: int = 0, hidden: int = 64, layers: int = 2, input_dependent: bool = False
) -> Path:
    """Write a tiny Llama (safetensors + SmolLM2 tokenizer) into ``target``.

    The stock random init (std 0.02) makes every prompt yield the same
    token; ``input_dependent`` scales the weights up so that the next token
    is a real function of the whole prompt (what batching tests need, or a
    padding bug would go unseen).
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if input_dependent:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in model.parameters():
                if param.dim() > 1:
                    scale = 2.0 / param.shape[-1] ** 0.5
                    param.copy_(torch.randn(param.shape, generator=generator) * scale)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    return target
