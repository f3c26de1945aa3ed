"""Credentials in prompts and outputs: cloud and SaaS API keys, tokens,
private keys, JWTs, llmline's own keys and high-entropy values assigned to
names like ``password`` or ``api_key``.

Each provider format is a precompiled pattern with bounded quantifiers,
tried only when one of its literal hints occurs in the text (a substring
test costs far less than a regex pass).  Formats that a random word could
take (``sk-...``) must look random too: upper and lower case and digits.
Generic assignments are judged by the value: it must not look like a
variable, a placeholder or an environment lookup, and its Shannon entropy
must reach ``min_entropy`` bits per character.

Only the secret itself is redacted (``api_key = "[REDACTED:SECRET]"``), so
the redacted text still says what was there.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from llmline.gateway.safety import ScanContext, ScanResult
from llmline.guard.scanners._text import count_notes, non_overlapping, parse_options, redact

if TYPE_CHECKING:
    from llmline.guard.scanners import Embedder

__all__ = [
    "CATEGORY",
    "PLACEHOLDER",
    "SecretMatch",
    "SecretsOptions",
    "SecretsScanner",
    "create",
    "shannon_entropy",
]

CATEGORY = "secret"
PLACEHOLDER = "[REDACTED:SECRET]"


@dataclass(frozen=True)
class SecretMatch:
    """One credential: its kind and where it is (``text[start:end]``)."""

    kind: str
    start: int
    end: int


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value`` (0.0 for an empty string)."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


@dataclass(frozen=True)
class _Format:
    """A provider's token format: ``group`` is the secret's group in ``regex``."""

    kind: str
    hints: tuple[str, ...]  # lower-case substrings, one of which must occur
    regex: re.Pattern[str]
    group: int = 0
    check: Callable[[str], bool] | None = None  # a further test of the secret


def _random_looking(value: str) -> bool:
    return (
        any(c.isupper() for c in value)
        and any(c.islower() for c in value)
        and any(c.isdigit() for c in value)
    )


_WORD_PASSWORDS = frozenset({"password", "passwd", "pass", "pwd", "secret", "pw"})


def _real_password(value: str) -> bool:
    """Not the word "password" or a template variable ("user:${PASS}@")."""
    return value.lower() not in _WORD_PASSWORDS and not _PLACEHOLDER_VALUE.search(value)


_B = r"(?<![A-Za-z0-9_\-])"  # not inside a longer token
_E = r"(?![A-Za-z0-9_\-])"
_FORMATS: tuple[_Format, ...] = (
    _Format(
        "llmline_key",
        ("llk_",),
        re.compile(_B + r"llk_k?[0-9a-f]{12,32}_[A-Za-z0-9_\-]{16,128}" + _E),
    ),
    _Format(
        "aws_access_key_id",
        ("akia", "asia", "abia", "acca", "agpa", "aida", "aipa", "anpa", "anva", "apka", "aroa"),
        re.compile(
            r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA)"
            r"[A-Z0-9]{16}(?![A-Z0-9])"
        ),
    ),
    _Format(
        "aws_secret_access_key",
        ("aws",),
        re.compile(
            r"(?i)aws[A-Za-z0-9_\-. ]{0,30}?(?:secret|private)[A-Za-z0-9_\-. ]{0,30}?[\"']?"
            r"\s*(?::=|=>|=|:)\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        group=1,
        check=_random_looking,
    ),
    _Format(
        "github_token",
        ("ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_"),
        re.compile(_B + r"(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})" + _E),
    ),
    _Format(
        "anthropic_api_key",
        ("sk-ant-",),
        re.compile(_B + r"sk-ant-[A-Za-z0-9_\-]{32,200}" + _E),
        check=_random_looking,
    ),
    _Format(
        "openai_api_key",
        ("sk-",),
        re.compile(_B + r"sk-(?:proj-|svcacct-|admin-)?(?!ant-)[A-Za-z0-9_\-]{20,200}" + _E),
        check=_random_looking,
    ),
    _Format(
        "slack_token",
        ("xox",),
        re.compile(_B + r"xox[abposre]-\d{6,16}-[A-Za-z0-9\-]{8,200}" + _E),
    ),
    _Format(
        "slack_webhook",
        ("hooks.slack.com",),
        re.compile(
            r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,12}/B[A-Z0-9]{6,12}/[A-Za-z0-9]{20,32}"
        ),
    ),
    _Format("google_api_key", ("aiza",), re.compile(_B + r"AIza[0-9A-Za-z_\-]{35}" + _E)),
    _Format(
        "stripe_key",
        ("sk_live_", "rk_live_", "sk_test_", "rk_test_"),
        re.compile(_B + r"[sr]k_(?:live|test)_[0-9A-Za-z]{24,247}" + _E),
    ),
    _Format(
        "bearer_token",
        ("bearer",),
        re.compile(r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]{20,500}=*)(?![A-Za-z0-9\-._~+/=])"),
        group=1,
        check=_random_looking,
    ),
    _Format(
        "url_credentials",
        ("://",),
        # The password of scheme://user:password@host.
        re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]{1,20}://[^\s:/@]{1,64}:([^\s:/@]{3,128})@"),
        group=1,
        check=_real_password,
    ),
)
# Overlaps go to the most specific finding: a JWT sent as a bearer token is a JWT.
_RANK = {"private_key": 0, "jwt": 1} | {f.kind: i + 2 for i, f in enumerate(_FORMATS)}
_RANK["generic_secret"] = len(_RANK)
_SCORES = {"generic_secret": 0.8, "bearer_token": 0.9, "url_credentials": 0.9}

_PEM_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ ){0,4}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ ){0,4}PRIVATE KEY(?: BLOCK)?-----")
# A key cut off before its END line: the base64 lines (and headers) that follow.
_PEM_BODY = re.compile(r"(?:\s+[A-Za-z0-9+/=:,\-]{8,})*")
_PEM_MAX = 20_000  # an RSA-16384 key is about 12,000 characters

_JWT = re.compile(
    r"(?<![A-Za-z0-9_\-])(eyJ[A-Za-z0-9_\-]{5,2000})\.[A-Za-z0-9_\-]{2,8000}"
    r"\.[A-Za-z0-9_\-]{0,2000}(?![A-Za-z0-9_\-])"
)
_AWS_SECRET_NEAR = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")

_KEYWORDS = ("password", "passwd", "pwd", "secret", "token", "key", "credential", "auth")
_ASSIGNMENT = re.compile(
    r"(?i)(?:password|passwd|pwd|secret|token|api[_\-]?key|apikey|access[_\-]?key|"
    r"private[_\-]?key|auth[_\-]?key|credentials?)(?P<suffix>[A-Za-z0-9_\-]{0,20})[\"']?"
    r"\s*(?::=|=>|==?|:)\s*(?:(?P<q>[\"'`])(?P<quoted>[^\"'`\s]{8,200})(?P=q)|"
    r"(?P<bare>[A-Za-z0-9+/=_\-.~!@#$%^&*]{8,200})(?=[\s,;)}\]]|$))"
)
# Names that hold facts about a secret rather than the secret itself.
_NOT_SECRET_NAME = re.compile(
    r"(?i)^[_\-]?(?:s|name|type|url|uri|path|file|len|length|count|size|limit|max|min|id|"
    r"field|hint|policy|label|header|endpoint|expir\w*|ttl|usage|pattern|regex|prompt)(?:$|[_\-])"
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_PLACEHOLDER_VALUE = re.compile(
    r"(?i)your|example|placeholder|redacted|dummy|sample|changeme|xxxx|\*\*\*|<|>|\$\{|\{\{|"
    r"^\$|^%|environ|getenv|process\.env|^(?:true|false|null|none)$|^\d+$"
)


def _rank(match: SecretMatch) -> int:
    return _RANK[match.kind]


def _formats(text: str, lower: str) -> Iterator[SecretMatch]:
    for fmt in _FORMATS:
        if not any(hint in lower for hint in fmt.hints):
            continue
        for m in fmt.regex.finditer(text):
            if fmt.check is not None and not fmt.check(m.group(fmt.group)):
                continue
            yield SecretMatch(fmt.kind, m.start(fmt.group), m.end(fmt.group))


def _aws_secrets_near_ids(text: str, ids: list[SecretMatch]) -> Iterator[SecretMatch]:
    """A 40-character AWS secret written just after its access key id."""
    for key_id in ids:
        stop = min(len(text), key_id.end + 200)
        for m in _AWS_SECRET_NEAR.finditer(text, key_id.end, stop):
            if _random_looking(m.group()):
                yield SecretMatch("aws_secret_access_key", m.start(), m.end())
                break


def _private_keys(text: str) -> Iterator[SecretMatch]:
    if "PRIVATE KEY" not in text:
        return
    ends = [m.end() for m in _PEM_END.finditer(text)]
    # Each BEGIN is paired with the first END after it (found by bisection:
    # no rescan per BEGIN, so many unterminated BEGINs stay linear).
    for m in _PEM_BEGIN.finditer(text):
        i = bisect.bisect_left(ends, m.end())
        if i < len(ends) and ends[i] - m.start() <= _PEM_MAX:
            yield SecretMatch("private_key", m.start(), ends[i])
        else:
            body = _PEM_BODY.match(text, m.end(), min(len(text), m.end() + _PEM_MAX))
            yield SecretMatch("private_key", m.start(), body.end() if body else m.end())


def _jwts(text: str) -> Iterator[SecretMatch]:
    if "eyJ" not in text:
        return
    for m in _JWT.finditer(text):
        header = m.group(1)
        try:
            decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
        except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
            continue
        if isinstance(decoded, dict) and "alg" in decoded:
            yield SecretMatch("jwt", m.start(), m.end())


def _secret_value(value: str, bare: bool, min_entropy: float) -> bool:
    if _PLACEHOLDER_VALUE.search(value):
        return False
    # A bare name is a variable ("password = new_password"), unless digits
    # make it look generated ("API_KEY=ab12cd34ef56").
    if bare and _IDENTIFIER.fullmatch(value) and ("." in value or not any(map(str.isdigit, value))):
        return False
    return shannon_entropy(value) >= min_entropy


def _assignments(text: str, lower: str, min_entropy: float) -> Iterator[SecretMatch]:
    if not any(word in lower for word in _KEYWORDS):
        return
    for m in _ASSIGNMENT.finditer(text):
        if _NOT_SECRET_NAME.match(m.group("suffix")):
            continue
        group = "quoted" if m.group("quoted") is not None else "bare"
        if _secret_value(m.group(group), group == "bare", min_entropy):
            yield SecretMatch("generic_secret", m.start(group), m.end(group))


class SecretsOptions(BaseModel):
    """Options of the ``secrets`` scanner in ``llmline.yaml``."""

    model_config = ConfigDict(extra="forbid")

    min_entropy: float = Field(
        default=3.0,
        ge=0.0,
        le=8.0,
        description="bits per character a value assigned to password/secret/token/api_key "
        "must reach to count as a secret",
    )
    generic: bool = Field(default=True, description="report generic assignments at all")


class SecretsScanner:
    """Credentials: category ``secret``, ``high`` severity; the score is
    1.0 for a provider's own format, a little less for generic findings."""

    name = "secrets"
    inline_chars = 20_000

    def __init__(self, options: SecretsOptions | None = None) -> None:
        self.options = options or SecretsOptions()

    def find(self, text: str) -> list[SecretMatch]:
        """The credentials in ``text``, in text order, overlaps settled."""
        lower = text.lower()
        found = list(_formats(text, lower))
        found.extend(
            _aws_secrets_near_ids(text, [m for m in found if m.kind == "aws_access_key_id"])
        )
        found.extend(_private_keys(text))
        found.extend(_jwts(text))
        if self.options.generic:
            found.extend(_assignments(text, lower, self.options.min_entropy))
        return non_overlapping(found, _rank)

    def scan(self, text: str, context: ScanContext) -> ScanResult:
        matches = self.find(text)
        if not matches:
            return ScanResult(scores={CATEGORY: 0.0})
        score = max(_SCORES.get(m.kind, 1.0) for m in matches)
        return ScanResult(
            scores={CATEGORY: score},
            severity={CATEGORY: "high"},
            redacted_text=redact(text, [(m.start, m.end, PLACEHOLDER) for m in matches]),
            notes=count_notes(m.kind for m in matches),
        )


def create(options: Mapping[str, Any], *, embedder: Embedder | None = None) -> SecretsScanner:
    """The ``secrets`` entry point (``embedder`` is not used)."""
    return SecretsScanner(parse_options(SecretsOptions, options, "secrets"))
