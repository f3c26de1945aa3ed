"""The secrets scanner: provider formats, private keys, JWTs, llmline keys
and generic assignments found and redacted; code and config that merely
talk about secrets pass."""

from __future__ import annotations

import base64
import json
import random
import string

import pytest

from llmline.errors import ConfigError
from llmline.gateway.safety import ScanContext
from llmline.guard.scanners import create_scanner
from llmline.guard.scanners.secrets import (
    PLACEHOLDER,
    SecretsScanner,
    create,
    shannon_entropy,
)
from tests.guard.scanners._inputs import random_text, zero_width_text

CTX = ScanContext(direction="input")
# Seeded, so that a failure names the same token on every run.
_RNG = random.Random(1337)


def _token(alphabet: str, n: int) -> str:
    return "".join(_RNG.choices(alphabet, k=n))


_ALNUM = string.ascii_letters + string.digits
_URLSAFE = _ALNUM + "-_"
_HEX = "0123456789abcdef"


def _b64url(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


JWT = f"{_b64url({'alg': 'HS256', 'typ': 'JWT'})}.{_b64url({'sub': '42'})}.{_token(_URLSAFE, 43)}"
LLMLINE_KEY = f"llk_k{_token(_HEX, 12)}_{_token(_URLSAFE, 43)}"  # as llmline.guard.keys mints them
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    + "\n".join(_token(_ALNUM + "+/", 64) for _ in range(4))
    + "\n-----END RSA PRIVATE KEY-----"
)


@pytest.fixture(scope="module")
def scanner() -> SecretsScanner:
    return SecretsScanner()


def _found(scanner: SecretsScanner, text: str) -> list[tuple[str, str]]:
    return [(m.kind, text[m.start : m.end]) for m in scanner.find(text)]


@pytest.mark.parametrize(
    ("template", "kind", "secret"),
    [
        ("aws_access_key_id = {s}", "aws_access_key_id", "AKIAIOSFODNN7EXAMPLE"),
        ("creds: {s}", "aws_access_key_id", "ASIA" + _token(string.ascii_uppercase, 16)),
        (
            "aws_secret_access_key = {s}",
            "aws_secret_access_key",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        ("export GITHUB_TOKEN={s}", "github_token", "ghp_" + _token(_ALNUM, 36)),
        ("token: {s}", "github_token", "github_pat_" + _token(_ALNUM + "_", 82)),
        ("OPENAI_API_KEY={s}", "openai_api_key", "sk-proj-" + _token(_URLSAFE, 60) + "A1b"),
        ("key {s} end", "openai_api_key", "sk-" + _token(_ALNUM, 45) + "Aa1"),
        ("x-api-key: {s}", "anthropic_api_key", "sk-ant-api03-" + _token(_URLSAFE, 90) + "Aa1"),
        ("SLACK={s}", "slack_token", "xoxb-123456789012-1234567890123-" + _token(_ALNUM, 24)),
        (
            "post to {s}",
            "slack_webhook",
            "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/" + _token(_ALNUM, 24),
        ),
        ("maps key {s}", "google_api_key", "AIza" + _token(_URLSAFE, 35)),
        ("stripe {s}", "stripe_key", "sk_live_" + _token(_ALNUM, 24)),
        ("restricted {s}", "stripe_key", "rk_live_" + _token(_ALNUM, 24)),
        ("{s}", "private_key", PEM),
        ("cookie session={s};", "jwt", JWT),
        ("Authorization: Bearer {s}", "jwt", JWT),
        ("Authorization: Bearer {s}", "bearer_token", _token(_ALNUM, 40) + "Aa1"),
        ("LLMLINE_API_KEY={s}", "llmline_key", LLMLINE_KEY),
        ("DATABASE_URL=postgres://app:{s}@db.internal:5432/app", "url_credentials", "Zq8#rT2!vW"),
        ('password = "{s}"', "generic_secret", "Xk9#mQ2$vL8pZ"),
        ("SECRET_KEY='{s}'", "generic_secret", "django-insecure-8f#k2!x@zq9v$w1m"),
        ('{{"api_key": "{s}"}}', "generic_secret", "a8f3k29dk3m1x0q7"),
        ("API_TOKEN={s}", "generic_secret", "ab12cd34ef56gh78"),
    ],
)
def test_finds_each_kind(scanner: SecretsScanner, template: str, kind: str, secret: str) -> None:
    text = template.format(s=secret)
    assert _found(scanner, text) == [(kind, secret)]
    result = scanner.scan(text, CTX)
    assert result.redacted_text == template.format(s=PLACEHOLDER)
    assert result.severity == {"secret": "high"}
    assert secret not in " ".join(result.notes)


@pytest.mark.parametrize(
    "text",
    [
        "We use sk-learn-compatible-estimator-wrappers for the pipeline",
        'password = os.environ["DB_PASSWORD"]',
        "password = new_password",
        "self.password = config.database.password",
        'api_key = "YOUR_API_KEY_HERE"',
        "API_KEY=<your-api-key>",
        "token: ${GITHUB_TOKEN}",
        "password: '********'",
        "max_tokens = 4096",
        "tokenizer = AutoTokenizer.from_pretrained('bert-base-uncased')",
        "token_count: 1234567890",
        'secret_name: "my-db-credentials-prod"',
        "The token_type is bearer and the password_length is 12.",
        "def check(password: str) -> bool: ...",
        "postgres://user:password@localhost/db",
        "DB_PASSWORD=changeme",
        "Use the Authorization header with a bearer token.",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n"
        "-----END PUBLIC KEY-----",
        "eyJub3QiOiAiYSBqd3QifQ.eyJzdWIiOiAiNDIifQ.c2ln",  # header has no "alg"
    ],
)
def test_talk_about_secrets_is_not_a_secret(scanner: SecretsScanner, text: str) -> None:
    assert _found(scanner, text) == []
    assert scanner.scan(text, CTX).scores == {"secret": 0.0}


def test_aws_secret_next_to_its_key_id(scanner: SecretsScanner) -> None:
    text = "use AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY for the bucket"
    assert [kind for kind, _ in _found(scanner, text)] == [
        "aws_access_key_id",
        "aws_secret_access_key",
    ]


def test_unterminated_private_key_is_redacted_to_the_end_of_its_body(
    scanner: SecretsScanner,
) -> None:
    body = "\n".join(_token(_ALNUM + "+/", 64) for _ in range(3))
    text = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n\nthat is all I have"
    result = scanner.scan(text, CTX)
    assert result.redacted_text == f"{PLACEHOLDER}\n\nthat is all I have"


def test_generic_scores_below_provider_formats(scanner: SecretsScanner) -> None:
    generic = scanner.scan('password = "Xk9#mQ2$vL8pZ"', CTX).scores["secret"]
    provider = scanner.scan("ghp_" + _token(_ALNUM, 36), CTX).scores["secret"]
    assert 0.5 <= generic < provider == 1.0


def test_min_entropy_option_decides_generic_values() -> None:
    text = 'password = "abcabcabcxyz"'  # about 2.6 bits per character
    assert shannon_entropy("abcabcabcxyz") < 3.0
    assert create({}, embedder=None).find(text) == []
    assert [m.kind for m in create({"min_entropy": 2.0}, embedder=None).find(text)] == [
        "generic_secret"
    ]
    strict = create({"generic": False}, embedder=None)
    assert strict.find('password = "Xk9#mQ2$vL8pZ"') == []


def test_shannon_entropy() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)
    assert shannon_entropy("aabb") == pytest.approx(1.0)


def test_notes_count_kinds(scanner: SecretsScanner) -> None:
    text = f"{LLMLINE_KEY} and {JWT} and {LLMLINE_KEY[:-1]}Z"
    assert scanner.scan(text, CTX).notes == ("jwt x1", "llmline_key x2")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"min_entropy": -1}, "min_entropy"),
        ({"min_entropy": "high"}, "min_entropy"),
        ({"x": 1}, "x"),
    ],
)
def test_bad_options_raise_config_error(options: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=f"guard scanner secrets: {field}"):
        create(options, embedder=None)


def test_entry_point_builds_the_scanner() -> None:
    scanner = create_scanner("secrets")
    assert isinstance(scanner, SecretsScanner) and scanner.name == "secrets"


def test_megabyte_inputs_return(scanner: SecretsScanner) -> None:
    assert scanner.scan(zero_width_text(), CTX).scores == {"secret": 0.0}
    assert 0.0 <= scanner.scan(random_text(), CTX).scores["secret"] <= 1.0
    # Many key headers with no END line: each is paired without a rescan.
    headers = "-----BEGIN PRIVATE KEY-----\n" * 40_000
    assert scanner.scan(headers, CTX).scores == {"secret": 1.0}
