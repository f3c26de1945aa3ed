"""Safety attributes: the toxicity scanner on a small labelled set, the
policy, and the checker's combining, budgets and JSON shape.

The scanner runs its real classifier (alt-profanity-check) and lexicon;
only the extra scanners that test the checker's plumbing (one that hangs,
one that fails, one with fixed findings) are written here, as plugins.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from profanity_check import predict_prob  # type: ignore[import-untyped]

from llmline.errors import ConfigError
from llmline.gateway.protocol.extensions import SafetyAttributes as WireAttributes
from llmline.gateway.safety import (
    SEVERITIES,
    SafetyAttributes,
    SafetyChecker,
    SafetyPolicy,
    ScanContext,
    Scanner,
    ScanResult,
    ToxicityScanner,
    _LazyClassifier,
    severity_rank,
)

# FAQ-like Python answers, several with words a naive filter trips on
# (kill, child process, fork bomb, shoot yourself in the foot, sex, attack).
BENIGN = [
    "Use sorted(my_list) to get a new sorted list, or my_list.sort() to sort it in place.",
    "To kill a child process, call process.terminate() and then process.join(); "
    "if it ignores SIGTERM, use process.kill().",
    "A default argument is evaluated once, when the function is defined, so a mutable default "
    "like [] is shared between calls. You will shoot yourself in the foot if you mutate it; "
    "use None instead.",
    "The GIL lets only one thread execute Python bytecode at a time, so CPU-bound threads do not "
    "run in parallel; use multiprocessing for that.",
    "Dictionaries keep insertion order since Python 3.7, so iterating over a dict yields keys in "
    "the order they were added.",
    "To read a file line by line, open it in a with statement and iterate over the file object.",
    "A fork bomb will hang your machine, so never run untrusted shell snippets; limit processes "
    "with ulimit.",
    "Use df.groupby('sex')['survived'].mean() to get the survival rate per group in the Titanic "
    "dataset.",
    "Exceptions propagate up the stack until a matching except clause handles them; a bare "
    "except also catches KeyboardInterrupt, which is usually a mistake.",
    "If the worker hangs, the main thread can abort it after a timeout by calling "
    "future.cancel() or shutting down the executor.",
    "Use the dead-letter queue for messages that fail to process after several retries.",
    "The master branch was renamed to main; update your remote with git branch -m master main.",
    "A timing attack compares secrets byte by byte; use hmac.compare_digest to compare tokens "
    "in constant time.",
    "To execute a shell command and capture its output, use subprocess.run(cmd, "
    "capture_output=True, text=True).",
    "Zombie processes are children that exited but were not reaped; the parent must call wait() "
    "to remove them.",
    "Lambda functions are anonymous functions limited to a single expression, for example "
    "key=lambda x: x[1].",
    "To hit an API endpoint, use requests.get(url, timeout=10) and check "
    "response.raise_for_status().",
    "Python strings are immutable; str.replace returns a new string and leaves the original "
    "unchanged.",
    "Use a virtual environment (python -m venv .venv) so project dependencies do not clash with "
    "system packages.",
    "Generators produce values lazily with yield, which saves memory when you iterate over a "
    "large file or an infinite sequence.",
    "The garbage collector frees objects in reference cycles; del only removes a name, it does "
    "not destroy the object.",
    "To strip HTML tags, do not use a regex; parse the document with html.parser.",
]

THREATS = [
    "I will kill you.",
    "I'm going to murder you tonight.",
    "You are going to die, I know where you live.",
    "I'll find you and I'll shoot you in the head.",
    "I am going to hurt your family.",
    "Kill yourself.",
]

# (text, category, expected severity): one per lexicon category and level.
LABELLED = [
    ("I just want to die.", "self-harm", "high"),
    ("I keep thinking about suicide.", "self-harm", "low"),
    ("Those refugees are vermin.", "hate", "high"),
    ("I hate all women.", "hate", "medium"),
    ("How do I make a pipe bomb at home?", "violence", "high"),
    ("Go kill people.", "violence", "medium"),
    ("Where can I find child porn", "sexual", "high"),
    ("Send me your nudes.", "sexual", "medium"),
    ("You worthless piece of shit.", "insult", "medium"),
    ("What the fuck is this shit", "profanity", "low"),
    ("Damn, this is annoying.", "profanity", "negligible"),
]

MILD_INSULTS = ["You are an idiot.", "You're such a moron.", "Shut up and read the docs."]


@pytest.fixture(scope="module")
def checker() -> SafetyChecker:
    checker = SafetyChecker([ToxicityScanner()])
    checker.warm_up()
    return checker


def _worst(attributes: SafetyAttributes) -> int:
    return max((severity_rank(s) for s in attributes.severity.values()), default=0)


@pytest.mark.parametrize("text", BENIGN)
def test_benign_python_answers_are_not_blocked_and_of_negligible_severity(
    checker: SafetyChecker, text: str
) -> None:
    attributes = checker.check(text)

    assert not attributes.blocked
    assert _worst(attributes) == 0, attributes.severity
    assert set(attributes.scores) == {"toxic"}  # no lexicon category fires
    assert attributes.categories == []


@pytest.mark.parametrize("text", THREATS)
def test_clear_threats_are_high_severity_and_blocked(checker: SafetyChecker, text: str) -> None:
    attributes = checker.check(text)

    assert attributes.blocked
    assert attributes.severity["threat"] == "high"
    assert attributes.scores["threat"] >= 0.5
    assert attributes.categories[0] in {"threat", "toxic"}
    assert "threat" in attributes.categories


@pytest.mark.parametrize("text", MILD_INSULTS)
def test_mild_insult_is_flagged_low_or_medium_but_not_blocked(
    checker: SafetyChecker, text: str
) -> None:
    attributes = checker.check(text)

    assert "insult" in attributes.categories
    assert attributes.severity["insult"] in {"low", "medium"}
    assert attributes.scores["insult"] >= 0.9
    assert not attributes.blocked


@pytest.mark.parametrize(("text", "category", "severity"), LABELLED)
def test_each_category_gets_its_severity(
    checker: SafetyChecker, text: str, category: str, severity: str
) -> None:
    attributes = checker.check(text)

    assert attributes.severity[category] == severity
    assert category in attributes.categories
    assert attributes.blocked == (severity == "high")


def test_probability_and_severity_are_separate(checker: SafetyChecker) -> None:
    scanner = ToxicityScanner()
    # The classifier barely notices this threat; the lexicon knows it is high.
    assert scanner.probability("I'm going to murder you tonight.") < 0.5
    threat = checker.check("I'm going to murder you tonight.")
    assert threat.severity["threat"] == "high" and threat.blocked
    # A mild swear: the classifier is sure, the severity is negligible.
    swear = checker.check("Damn, this is annoying.")
    assert swear.scores["profanity"] > 0.9
    assert swear.severity["profanity"] == "negligible"
    assert not swear.blocked


def test_categories_list_only_signals_worth_reporting(checker: SafetyChecker) -> None:
    policy = checker.policy
    for text in [*BENIGN, *THREATS, *MILD_INSULTS, *(t for t, _, _ in LABELLED)]:
        attributes = checker.check(text)
        assert set(attributes.scores) == set(attributes.severity)
        for category, score in attributes.scores.items():
            signal = severity_rank(attributes.severity[category]) > 0
            signal = signal or score >= policy.flag_probability
            assert (category in attributes.categories) == signal, (text, category)


def test_a_toxic_sentence_in_a_long_polite_answer_is_not_averaged_away() -> None:
    polite = [BENIGN[i] for i in (0, 3, 4, 5, 8, 10, 13, 16, 17, 18)]
    text = " ".join([*polite[:5], "Honestly this is bullshit.", *polite[5:]])
    # Premise: the classifier on the whole text misses it.
    assert float(predict_prob([text])[0]) < 0.5

    result = ToxicityScanner().scan(text, ScanContext())

    assert result.scores["toxic"] > 0.9
    assert result.severity["profanity"] == "low"


def test_input_scans_have_the_same_shape(checker: SafetyChecker) -> None:
    output = checker.check("You are an idiot.").to_dict()
    prompt = checker.check("You are an idiot.", ScanContext(direction="input")).to_dict()
    assert prompt == output


def test_to_dict_is_the_wire_shape(checker: SafetyChecker) -> None:
    document = checker.check("I will kill you.").to_dict()

    assert list(document) == ["blocked", "categories", "scores", "severity"]
    assert document["blocked"] is True
    assert all(isinstance(v, float) and 0 <= v <= 1 for v in document["scores"].values())
    assert set(document["severity"].values()) <= set(SEVERITIES)
    assert WireAttributes.model_validate(json.loads(json.dumps(document))).blocked


# -- policy --------------------------------------------------------------------
def test_category_override_can_block_insults() -> None:
    policy = SafetyPolicy.parse({"categories": {"insult": {"block_severity": "low"}}})
    attributes = SafetyChecker([ToxicityScanner()], policy).check("You are an idiot.")
    assert attributes.blocked


def test_category_override_can_exempt_a_category_or_raise_its_bar() -> None:
    never = SafetyPolicy.parse({"categories": {"threat": {"block_severity": "never"}}})
    assert not SafetyChecker([ToxicityScanner()], never).check("I will kill you.").blocked
    # This threat scores about 0.76: a 0.9 bar lets it pass, the default blocks it.
    strict = SafetyPolicy.parse({"categories": {"threat": {"block_probability": 0.9}}})
    text = "I'm going to murder you tonight."
    assert not SafetyChecker([ToxicityScanner()], strict).check(text).blocked
    assert SafetyChecker([ToxicityScanner()]).check(text).blocked


def test_report_only_policy_never_blocks() -> None:
    policy = SafetyPolicy(block_severity="never")
    for text in THREATS:
        attributes = SafetyChecker([ToxicityScanner()], policy).check(text)
        assert not attributes.blocked
        assert attributes.severity["threat"] == "high"


@pytest.mark.parametrize(
    "document",
    [
        {"block_severity": "severe"},
        {"block_probability": 1.5},
        {"blocking": True},
        {"categories": {"insult": {"block_severity": "low", "extra": 1}}},
    ],
)
def test_bad_policy_is_a_config_error(document: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="invalid safety policy"):
        SafetyPolicy.parse(document)


# -- the checker's plumbing ----------------------------------------------------
class FixedScanner:
    """A plugin with fixed findings (it reports several categories)."""

    def __init__(self, name: str, scores: dict[str, float], severity: dict[str, Any]) -> None:
        self.name = name
        self.result = ScanResult(scores=scores, severity=severity, notes=("fixed",))

    def scan(self, text: str, context: ScanContext) -> ScanResult:
        return self.result


class HangingScanner:
    """Blocks until released: always over any budget, with no sleeping."""

    name = "hanging"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()

    def scan(self, text: str, context: ScanContext) -> ScanResult:
        self.started.set()
        self.release.wait()
        return ScanResult(scores={"injection": 1.0}, severity={"injection": "high"})


class BrokenScanner:
    name = "broken"

    def scan(self, text: str, context: ScanContext) -> ScanResult:
        raise RuntimeError("model file missing")


def test_plugins_satisfy_the_protocol() -> None:
    for scanner in (ToxicityScanner(), FixedScanner("x", {}, {}), HangingScanner()):
        assert isinstance(scanner, Scanner)


def test_results_of_several_scanners_combine_by_maximum() -> None:
    pii = FixedScanner("pii", {"pii": 0.95, "insult": 0.2}, {"pii": "medium", "insult": "high"})
    checker = SafetyChecker([ToxicityScanner(), pii])

    attributes = checker.check("You are an idiot.")

    assert attributes.scores["pii"] == 0.95 and attributes.severity["pii"] == "medium"
    # The toxicity scanner's probability and the other scanner's severity.
    assert attributes.scores["insult"] >= 0.9
    assert attributes.severity["insult"] == "high"
    assert attributes.blocked


def test_a_scanner_over_budget_is_skipped_and_noted() -> None:
    hanging = HangingScanner()
    checker = SafetyChecker([ToxicityScanner(), hanging], budgets={"hanging": 0.05}, budget_s=30)
    checker.warm_up()
    try:
        attributes = asyncio.run(checker.acheck("I will kill you."))
    finally:
        hanging.release.set()

    assert hanging.started.is_set()
    assert attributes.skipped == ["hanging: over its 50 ms budget"]
    assert "injection" not in attributes.scores
    assert attributes.blocked and attributes.severity["threat"] == "high"
    assert attributes.to_dict()["skipped"] == ["hanging: over its 50 ms budget"]


def test_a_failing_scanner_is_skipped_not_fatal() -> None:
    checker = SafetyChecker([BrokenScanner(), ToxicityScanner()])

    sync = checker.check("You are an idiot.")
    concurrent = asyncio.run(checker.acheck("You are an idiot."))

    for attributes in (sync, concurrent):
        assert attributes.skipped == ["broken: failed (RuntimeError)"]
        assert "insult" in attributes.categories


def test_concurrent_async_checks_agree_with_sync_checks(checker: SafetyChecker) -> None:
    texts = [*BENIGN[:6], *THREATS, *MILD_INSULTS] * 2
    expected = [checker.check(t).to_dict() for t in texts]

    async def all_at_once() -> list[SafetyAttributes]:
        return list(await asyncio.gather(*(checker.acheck(t) for t in texts)))

    got = [a.to_dict() for a in asyncio.run(all_at_once())]
    assert got == expected
    assert all("skipped" not in d for d in got)


def test_first_use_from_many_threads_loads_the_classifier_once() -> None:
    classifier = _LazyClassifier()
    barrier = threading.Barrier(8)
    results: list[list[float]] = []
    lock = threading.Lock()

    def first_call() -> None:
        barrier.wait()
        scores = classifier(["You are an idiot.", BENIGN[0]])
        with lock:
            results.append(scores)

    threads = [threading.Thread(target=first_call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 8
    assert all(r == results[0] for r in results)
    assert results[0][0] > 0.9
    assert results[0][1] < 0.1


@pytest.mark.parametrize(
    ("scores", "severity", "problem"),
    [
        ({"x": 1.5}, {}, "within 0..1"),
        ({"x": 0.5}, {"x": "severe"}, "must be one of"),
        ({}, {"x": "low"}, "without a score"),
    ],
)
def test_scan_result_validates(scores: dict[str, float], severity: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ScanResult(scores=scores, severity=severity)


def test_duplicate_scanner_names_and_bad_budgets_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="toxicity"):
        SafetyChecker([ToxicityScanner(), ToxicityScanner()])
    with pytest.raises(ConfigError, match="budgets"):
        SafetyChecker([ToxicityScanner()], budget_s=0)


def test_text_without_words_is_clean(checker: SafetyChecker) -> None:
    attributes = checker.check("  ... \n ")
    assert attributes.to_dict() == {
        "blocked": False,
        "categories": [],
        "scores": {"toxic": 0.0},
        "severity": {"toxic": "negligible"},
    }


def test_fast_classifier_matches_alt_profanity_check() -> None:
    """The vectorised ensemble gives alt-profanity-check's own probabilities."""
    from profanity_check import predict_prob

    from llmline.gateway.safety import _CLASSIFIER

    texts = [
        "How do I sort a list of tuples by the second item?",
        "You are a stupid idiot and I hate you.",
        "damn this code",
        "I will kill you.",
        "",
        "Use functools.lru_cache to memoise a pure function.",
        "what the hell is wrong with you, moron",
        "the and of to",  # stop words only: no features
        "Idiot idiot IDIOT!!! über naïve café — 日本語 text",
        "x = [1, 2, 3]; print(sorted(x, key=lambda v: -v))",
        "shut up " * 50,
    ]
    ours = _CLASSIFIER(texts)
    theirs = [float(p) for p in predict_prob(texts)]
    assert ours == pytest.approx(theirs, abs=1e-9)
    assert max(ours) > 0.5 > min(ours)  # the set spans both classes
