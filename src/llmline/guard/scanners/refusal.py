"""Model refusals in outputs ("I'm sorry, but I can't help with that"): a
quality signal, not harm, so the severity is always ``negligible``.

A refusal is an inability or unwillingness phrase *about the request*, near
the start of the answer, in an answer that then gives no help.  Helpful
answers use the same words: "I can't reproduce your bug without the
traceback, could you share it?" is a request for information, and
"I can't help with X, but here is how to do Y" followed by a page of help is
mostly help.  So a phrase's weight is discounted when

- it is conditional ("... without the traceback", "unless", "until");
- the answer asks the user for something ("could you share", "please
  provide", a closing question);
- it offers an alternative ("but I can", "however, here is");
- a long answer or a code block follows it;
- it comes late in the answer (a caveat, not the answer).

English phrases are the detailed ones; German, French, Spanish, Italian,
Portuguese, Dutch and Chinese refusals are recognised by their stock
phrases.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from llmline.gateway.safety import ScanContext, ScanResult
from llmline.guard.scanners._text import parse_options

if TYPE_CHECKING:
    from llmline.guard.scanners import Embedder

__all__ = [
    "CATEGORY",
    "RefusalOptions",
    "RefusalScanner",
    "create",
    "refusal_score",
]

CATEGORY = "refusal"
_HEAD = 300  # a refusal is the answer's opening, not a caveat further down

# "I cannot", "I'm unable to", "we won't be able to", "I must decline" ...
_I_CANT = (
    r"\b(?:(?:i|we) (?:can ?not|can't|cant|won't|will not|must (?:respectfully )?decline to|"
    r"have to decline to|(?:do not|don't) feel comfortable)|(?:i'm|i am|we're|we are) "
    r"(?:unable|not able|not allowed|not permitted|not going) to|(?:i|we) (?:won't|will not) "
    r"be able to|(?:i'm|i am) not comfortable)"
)
# Verbs whose object is the request itself ("help with that", "provide it").
_ABOUT_REQUEST = (
    r"(?:help(?! but\b| it\b| (?:noticing|thinking|wondering|feeling|laughing)\b)|assist|"
    r"provide|comply|fulfil+|support|do (?:that|this)|answer|engage|create|generate|write|"
    r"produce|give|share|offer|continue|discuss|participate|complete|tell you|talk about|"
    r"respond|perform|carry out|go along)"
)
# Verbs of a capability the model lacks ("I can't browse the web").
_CAPABILITY = r"(?:access|browse|view|see|open|read|run|execute|visit|search)"
_WORDS = r"(?: [\w']+){0,3}? "  # a few words between: "I can't really help"


@dataclass(frozen=True)
class _Phrase:
    name: str
    weight: float
    hints: tuple[str, ...]  # substrings, one of which the text must hold
    regex: re.Pattern[str]


def _phrase(name: str, weight: float, hints: tuple[str, ...], pattern: str) -> _Phrase:
    return _Phrase(name, weight, hints, re.compile(pattern))


_CANT_HINTS: tuple[str, ...] = ("can", "won't", "will not", "unable", "not able", "not allowed")
_CANT_HINTS += ("not permitted", "not going", "decline", "comfortable")


# Patterns read lower-cased text with straight apostrophes and single spaces.
_PHRASES: tuple[_Phrase, ...] = (
    _phrase(
        "as_an_ai",
        0.9,
        ("as a",),
        r"\bas an? (?:ai|artificial intelligence|language model|ai language model|ai assistant|"
        r"large language model)\b[^.!?\n]{0,40}?(?:" + _I_CANT + r"|\b(?:i|we) (?:do not|don't)|"
        r"\bi'm not|\bi am not)\b",
    ),
    _phrase(
        "apology_refusal",
        0.9,
        ("sorry", "apologi", "afraid", "unfortunately"),
        r"\b(?:sorry|apologi[sz]e|afraid|unfortunately)\b[^.!?\n]{0,60}?"
        + _I_CANT
        + _WORDS
        + _ABOUT_REQUEST
        + r"\b",
    ),
    _phrase("inability", 0.75, _CANT_HINTS, _I_CANT + _WORDS + _ABOUT_REQUEST + r"\b"),
    _phrase("capability", 0.5, _CANT_HINTS, _I_CANT + _WORDS + _CAPABILITY + r"\b"),
    _phrase(
        "not_something_i_can",
        0.8,
        ("not something",),
        r"\b(?:that's|that is|this is|it's|it is) not something (?:i|we) (?:can|am able to|"
        r"will|'m able to) (?:help|assist|do|provide)",
    ),
    _phrase(
        "policy",
        0.8,
        ("request",),
        r"\b(?:this|that|your) request (?:goes against|violates|is against|is not in line with)"
        r" (?:my|the|our) (?:guidelines|policies|polic(?:y|ies)|programming|principles|rules)",
    ),
    _phrase(
        "decline",
        0.75,
        ("decline",),
        r"\b(?:i|we) (?:must|have to|will|need to) (?:respectfully )?decline\b",
    ),
    # Stock refusals in other languages (apology or "I cannot" + help/answer).
    _phrase(
        "de",
        0.8,
        ("leid", "ich kann", "nicht in der lage"),
        r"\b(?:es tut mir leid|leider)\b[^.!?\n]{0,60}?\bich kann\b|\bich kann (?:ihnen |dir )?"
        r"(?:dabei |damit |hierbei |bei dieser anfrage )?(?:nicht|leider nicht) "
        r"(?:helfen|behilflich)"
        r"|\bich bin nicht in der lage\b",
    ),
    _phrase(
        "fr",
        0.8,
        ("désolé", "je ne peux", "je ne suis pas"),
        r"\b(?:je suis désolée?|désolée?)\b[^.!?\n]{0,60}?\bje ne (?:peux|suis pas en mesure)\b"
        r"|\bje ne peux pas (?:vous |t')?(?:aider|répondre|fournir|accéder à cette demande)",
    ),
    _phrase(
        "es",
        0.8,
        ("lo siento", "no puedo"),
        r"\blo siento\b[^.!?\n]{0,60}?\bno puedo\b|\bno puedo (?:ayudar(?:te|le)?|"
        r"proporcionar|cumplir|responder)",
    ),
    _phrase(
        "it",
        0.8,
        ("mi dispiace", "non posso"),
        r"\bmi dispiace\b[^.!?\n]{0,60}?\bnon posso\b|\bnon posso (?:aiutar(?:ti|la|e)|fornire)",
    ),
    _phrase(
        "pt",
        0.8,
        ("desculpe", "lamento", "sinto muito", "não posso"),
        r"\b(?:desculpe|lamento|sinto muito)\b[^.!?\n]{0,60}?\bnão (?:posso|consigo)\b"
        r"|\bnão posso (?:ajudar|fornecer)",
    ),
    _phrase(
        "nl",
        0.8,
        ("het spijt me",),
        r"\bhet spijt me\b[^.!?\n]{0,60}?\bik kan\b[^.!?\n]{0,30}\bniet\b",
    ),
    _phrase(
        "zh",
        0.8,
        ("抱歉", "对不起", "很遗憾", "我无法", "我不能"),
        r"(?:抱歉|对不起|很遗憾)[^。！？\n]{0,20}?(?:我)?(?:无法|不能)|我(?:无法|不能)(?:帮助|协助|提供|回答)",
    ),
)

_CONDITIONAL = re.compile(
    r"\b(?:without|unless|until|before (?:i|we) (?:see|know|have)|if you don't)\b"
)
_ASKS_BACK = re.compile(
    r"\b(?:could|can|would) you (?:please )?(?:share|provide|send|paste|post|tell me|clarify|"
    r"give me|show|upload|add|attach|describe)|\bplease (?:share|provide|send|paste|post|"
    r"clarify|include|attach)\b"
)
# Refusals often close by offering other help; that question asks for nothing.
_OFFERS_ELSE = re.compile(r"\b(?:anything|something) else\b|\bother (?:questions?|topics?)\b")
_ALTERNATIVE = re.compile(
    r"\b(?:but|however|instead)\b,? (?:i|we) (?:can|could|'d be happy|would be happy|am happy)|"
    r"\b(?:here's|here is|here are)\b"
)
_SENTENCE_END = re.compile(r"[.!?。！？\n]")
_BLANKS = re.compile(r"[^\S\n]+")
_CODE = "```"


def _normalise(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return _BLANKS.sub(" ", text.lower())


def _closing_question(text: str) -> bool:
    """Whether the answer ends by asking the user something (not "anything else?")."""
    tail = text.rstrip()
    if not tail.endswith("?"):
        return False
    ends = [m.end() for m in _SENTENCE_END.finditer(tail, 0, len(tail) - 1)]
    last = tail[ends[-1] if ends else 0 :]
    return _OFFERS_ELSE.search(last) is None


def _discounts(text: str, start: int, end: int) -> list[tuple[float, str]]:
    """(factor, note) for each sign that the phrase at ``start:end`` is not a refusal."""
    stop = _SENTENCE_END.search(text, end)
    sentence_end = stop.start() if stop else len(text)
    rest = text[sentence_end:]
    out: list[tuple[float, str]] = []
    if _CONDITIONAL.search(text, end, sentence_end):
        out.append((0.15, "conditional"))
    if _ASKS_BACK.search(text) or _closing_question(text):
        out.append((0.35, "asks_back"))
    if _ALTERNATIVE.search(text, end):
        out.append((0.6, "offers_alternative"))
    if _CODE in rest or len(rest.strip()) > 600:
        out.append((0.4, "help_follows"))
    if start > _HEAD:
        out.append((0.3, "late"))
    return out


def refusal_score(text: str) -> tuple[float, tuple[str, ...]]:
    """How likely ``text`` is a refusal (0..1), with notes on why."""
    best = 0.0
    notes: tuple[str, ...] = ()
    # Phrases a little beyond the opening are read too (a preamble can come
    # first); the rest of the text matters only for the discounts.
    window = _normalise(text[: _HEAD * 4])
    lowered = ""
    for phrase in _PHRASES:
        if not any(hint in window for hint in phrase.hints):
            continue
        match = phrase.regex.search(window)
        if match is None:
            continue
        lowered = lowered or _normalise(text)
        score = phrase.weight
        found = [f"phrase:{phrase.name}"]
        for factor, note in _discounts(lowered, match.start(), match.end()):
            score *= factor
            found.append(f"discount:{note}")
        if score > best:
            best, notes = score, tuple(found)
    return round(best, 4), notes


class RefusalOptions(BaseModel):
    """Options of the ``refusal`` scanner in ``llmline.yaml``."""

    model_config = ConfigDict(extra="forbid")

    outputs_only: bool = Field(
        default=True, description="score outputs only (a prompt saying 'I can't' is not a refusal)"
    )


class RefusalScanner:
    """Refusals in model outputs: category ``refusal``, severity ``negligible``."""

    name = "refusal"
    inline_chars = 20_000

    def __init__(self, options: RefusalOptions | None = None) -> None:
        self.options = options or RefusalOptions()

    def scan(self, text: str, context: ScanContext) -> ScanResult:
        if self.options.outputs_only and context.direction == "input":
            return ScanResult()
        score, notes = refusal_score(text)
        return ScanResult(scores={CATEGORY: score}, severity={CATEGORY: "negligible"}, notes=notes)


def create(options: Mapping[str, Any], *, embedder: Embedder | None = None) -> RefusalScanner:
    """The ``refusal`` entry point (``embedder`` is not used)."""
    return RefusalScanner(parse_options(RefusalOptions, options, "refusal"))
