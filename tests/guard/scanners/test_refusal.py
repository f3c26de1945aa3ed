"""The refusal scanner: refusals in outputs score high, helpful answers
that use the same words do not."""

from __future__ import annotations

import pytest

from llmline.errors import ConfigError
from llmline.gateway.safety import ScanContext
from llmline.guard.scanners import create_scanner
from llmline.guard.scanners.refusal import RefusalScanner, create, refusal_score
from tests.guard.scanners._inputs import random_text, zero_width_text

OUT = ScanContext(direction="output", prompt="...")
CATEGORY = "refusal"


@pytest.fixture(scope="module")
def scanner() -> RefusalScanner:
    return RefusalScanner()


@pytest.mark.parametrize(
    "answer",
    [
        "I'm sorry, but I can't help with that.",
        "I’m sorry, but I can’t assist with that request.",  # curly apostrophes
        "As an AI language model, I cannot provide medical diagnoses.",
        "I am unable to assist with this request.",
        "I won't be able to help with creating malware.",
        "I'm sorry, but I can't help with that. Is there anything else I can help you with?",
        "Unfortunately, I cannot fulfill this request as it goes against my guidelines.",
        "That's not something I can help with.",
        "I must decline this request.",
        "Sorry, I'm not able to provide instructions for that.",
        "Es tut mir leid, aber ich kann Ihnen dabei nicht helfen.",
        "Je suis désolé, mais je ne peux pas vous aider avec cette demande.",
        "Lo siento, pero no puedo ayudarte con eso.",
        "Mi dispiace, ma non posso aiutarti con questa richiesta.",
        "Desculpe, mas não posso ajudar com isso.",
        "Het spijt me, maar ik kan je daar niet mee helpen.",
        "抱歉，我无法帮助你完成这个请求。",
    ],
)
def test_refusals_score_high(scanner: RefusalScanner, answer: str) -> None:
    result = scanner.scan(answer, OUT)
    assert result.scores[CATEGORY] >= 0.7
    assert result.severity == {CATEGORY: "negligible"}
    assert result.notes[0].startswith("phrase:")


@pytest.mark.parametrize(
    "answer",
    [
        "I can't reproduce your bug without the traceback, could you share it?",
        "I can't tell which version you're using. Could you paste the output of "
        "`python --version`?",
        "I can't help but notice the loop never terminates: `i` is never incremented.",
        "Sure! Here's how to reverse a list in Python: use `my_list[::-1]`.",
        "The error means the file can't be found. Check the path and try again.",
        "You cannot call this function before initialising the client; call init() first.",
        "I'm sorry to hear about your loss. Here are some resources that may help.",
        "Unfortunately, the API does not support batching yet, so send the requests one by one.",
        "Great question! The answer is 42.",
        "I can't answer that without knowing your region. Which country are you in?",
    ],
)
def test_helpful_answers_score_low(scanner: RefusalScanner, answer: str) -> None:
    assert scanner.scan(answer, OUT).scores[CATEGORY] < 0.5


def test_a_refusal_followed_by_real_help_is_discounted() -> None:
    refusal = "I can't help with hacking into other people's accounts."
    steps = "\n\n```bash\nsudo ufw enable\n```\n" + "Then review each rule carefully. " * 30
    plain, _ = refusal_score(refusal)
    helped, notes = refusal_score(refusal + " But I can explain how to secure your own:" + steps)
    assert plain >= 0.7
    assert helped < 0.5
    assert "discount:help_follows" in notes and "discount:offers_alternative" in notes


def test_a_code_block_after_the_phrase_is_help() -> None:
    answer = (
        "I can't help with the whole migration in one go; start with this step.\n\n"
        "```sql\nALTER TABLE users ADD COLUMN age int;\n```"
    )
    score, notes = refusal_score(answer)
    assert score < 0.5
    assert notes == ("phrase:inability", "discount:help_follows")


def test_a_late_caveat_is_not_the_answer() -> None:
    answer = "Here is the summary you asked for. " * 12 + "Note that I cannot browse the web."
    score, notes = refusal_score(answer)
    assert score < 0.5
    assert "discount:late" in notes


def test_inputs_are_skipped_unless_asked(scanner: RefusalScanner) -> None:
    prompt = "I'm sorry, but I can't help you with the move this weekend, can you?"
    assert scanner.scan(prompt, ScanContext(direction="input")).scores == {}
    both = create({"outputs_only": False}, embedder=None)
    assert CATEGORY in both.scan(prompt, ScanContext(direction="input")).scores


def test_bad_options_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="guard scanner refusal: outputs_only"):
        create({"outputs_only": "sometimes"}, embedder=None)
    with pytest.raises(ConfigError, match="guard scanner refusal: languages"):
        create({"languages": ["en"]}, embedder=None)


def test_entry_point_builds_the_scanner() -> None:
    scanner = create_scanner("refusal")
    assert isinstance(scanner, RefusalScanner) and scanner.name == "refusal"


def test_megabyte_inputs_return(scanner: RefusalScanner) -> None:
    assert scanner.scan(zero_width_text(), OUT).scores == {CATEGORY: 0.0}
    assert 0.0 <= scanner.scan(random_text(), OUT).scores[CATEGORY] <= 1.0
