"""The prompt contract: questions in, the tuning format out.

A deployment is bound to the template its model was tuned with; a client
sends only the question and the gateway renders the same instruction the
model saw in training, so production prompts match the tuning format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmline.errors import TemplateError
from llmline.gateway.engine import PromptBinding
from llmline.gateway.errors import InvalidRequestError
from llmline.gateway.protocol.chat import ChatMessage
from llmline.gateway.protocol.extensions import RequestOptions

__all__ = ["apply_chat_template", "apply_text_template"]


def _render(binding: PromptBinding, text: str, options: RequestOptions | None) -> str:
    template = binding.template
    assert template is not None
    variables = template.variables
    values: dict[str, Any] = dict(options.variables or {}) if options else {}
    if len(variables) == 1:
        values.setdefault(variables[0], text)
    missing = [v for v in variables if v not in values]
    if missing:
        raise InvalidRequestError(
            f"prompt {binding.ref} has variables {', '.join(variables)}: send "
            f'"llmline": {{"variables": {{...}}}} with {", ".join(missing)}',
            param="llmline.variables",
        )
    try:
        return template.render(values)
    except TemplateError as exc:
        raise InvalidRequestError(str(exc), param="llmline.variables") from None


def _raw(binding: PromptBinding, options: RequestOptions | None) -> bool:
    return binding.template is None or bool(options and options.raw)


def apply_chat_template(
    binding: PromptBinding, messages: Sequence[ChatMessage], options: RequestOptions | None
) -> tuple[tuple[dict[str, Any], ...], str, str | None]:
    """``(messages to send, the question, prompt version used)``.

    The last user message is the question; it is rendered into the
    template, earlier messages (a system prompt, history) pass unchanged.
    """
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
    if last is None:
        raise InvalidRequestError("messages must include a user message", param="messages")
    question = messages[last].text()
    if not question.strip():
        raise InvalidRequestError("the last user message is empty", param="messages")
    plain = [{"role": m.role, "content": m.text()} for m in messages]
    if _raw(binding, options):
        return tuple(plain), question, None
    plain[last] = {"role": "user", "content": _render(binding, question, options)}
    return tuple(plain), question, binding.ref


def apply_text_template(
    binding: PromptBinding, prompt: str, options: RequestOptions | None
) -> tuple[str, str | None]:
    """Text completions send the prompt as it is (it is the whole text the
    model continues) unless the request names template ``variables``."""
    if options is None or options.variables is None or binding.template is None:
        return prompt, None
    return _render(binding, prompt, options), binding.ref
