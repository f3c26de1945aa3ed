"""The pii scanner: each type found and redacted, checksums reject
look-alikes, realistic numbers that are not personal data pass."""

from __future__ import annotations

import dataclasses

import pytest

from llmline.errors import ConfigError
from llmline.gateway.safety import ScanContext
from llmline.guard.scanners import create_scanner
from llmline.guard.scanners.pii import (
    PII_TYPES,
    PiiMatch,
    PiiOptions,
    PiiScanner,
    create,
    iban_ok,
    luhn_ok,
    verhoeff_ok,
)
from tests.guard.scanners._inputs import random_text, zero_width_text

CTX = ScanContext(direction="input")


@pytest.fixture(scope="module")
def scanner() -> PiiScanner:
    return PiiScanner()


def _aadhaar() -> str:
    """A 12-digit number that passes Verhoeff (the checksum itself is pinned
    by test_checksums against published values)."""
    stem = "49918275351"
    return next(stem + d for d in "0123456789" if verhoeff_ok(stem + d))


def _found(scanner: PiiScanner, text: str) -> list[tuple[str, str]]:
    return [(m.type, text[m.start : m.end]) for m in scanner.find(text)]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        (
            "Write to jane.doe+billing@example.co.uk today",
            "email",
            "jane.doe+billing@example.co.uk",
        ),
        ("Contact: MAILTO:Bob_99@mail.example.org.", "email", "Bob_99@mail.example.org"),
        ("Call me on +1 415-555-2671 after five", "phone", "+1 415-555-2671"),
        ("ring (415) 555-2671", "phone", "(415) 555-2671"),
        ("office: 020 7946 0958", "phone", "020 7946 0958"),
        ("Berlin: 030 12345678", "phone", "030 12345678"),
        ("mobile 06 12 34 56 78", "phone", "06 12 34 56 78"),
        ("+91 98765 43210 is my WhatsApp", "phone", "+91 98765 43210"),
        ("Tokyo office +81 3-1234-5678", "phone", "+81 3-1234-5678"),
        ("E.164: +14155552671.", "phone", "+14155552671"),
        ("card 4111 1111 1111 1111 exp 12/27", "credit_card", "4111 1111 1111 1111"),
        ("amex 3782-822463-10005", "credit_card", "3782-822463-10005"),
        ("mc:5555555555554444", "credit_card", "5555555555554444"),
        (
            "IBAN DE89 3704 0044 0532 0130 00, BIC COBADEFFXXX",
            "iban",
            "DE89 3704 0044 0532 0130 00",
        ),
        ("pay to GB82WEST12345698765432 please", "iban", "GB82WEST12345698765432"),
        ("FR1420041010050500013M02606", "iban", "FR1420041010050500013M02606"),
        ("the server is at 203.0.113.42, port 22", "ipv4", "203.0.113.42"),
        ("private 192.168.1.20", "ipv4", "192.168.1.20"),
        ("v6: 2001:db8:85a3::8a2e:370:7334.", "ipv6", "2001:db8:85a3::8a2e:370:7334"),
        ("link-local fe80::1ff:fe23:4567:890a here", "ipv6", "fe80::1ff:fe23:4567:890a"),
        ("SSN: 123-45-6789", "us_ssn", "123-45-6789"),
        ("NI number AB 12 34 56 C", "uk_nino", "AB 12 34 56 C"),
        ("NINO: JG103759A", "uk_nino", "JG103759A"),
        ("DNI 12345678Z", "es_dni", "12345678Z"),
        ("NIE X-1234567L", "es_dni", "X-1234567L"),
    ],
)
def test_finds_each_type(scanner: PiiScanner, text: str, kind: str, value: str) -> None:
    assert _found(scanner, text) == [(kind, value)]


def test_aadhaar_grouped_or_next_to_its_name(scanner: PiiScanner) -> None:
    number = _aadhaar()
    grouped = f"{number[:4]} {number[4:8]} {number[8:]}"
    assert _found(scanner, f"my aadhaar is {grouped}") == [("in_aadhaar", grouped)]
    assert _found(scanner, f"id {grouped}") == [("in_aadhaar", grouped)]
    assert _found(scanner, f"Aadhaar no. {number}") == [("in_aadhaar", number)]
    # Twelve bare digits without the word are an order number, not an Aadhaar.
    assert _found(scanner, f"order {number} shipped") == []
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert "in_aadhaar" not in {
        m.type for m in scanner.find(f"{wrong[:4]} {wrong[4:8]} {wrong[8:]}")
    }


@pytest.mark.parametrize(
    "text",
    [
        "Upgrade to Python 3.11.4 or version 10.2.0.1 of the driver",
        "Order 12345678 shipped on 2024-01-15 for $1,299.00",
        "Send it to Beverly Hills, CA 90210-1234",
        "pi is 3.14159265 and e is 2.718281828",
        "ISBN 978-3-16-148410-0, published 12/05/2023",
        "In 2023 2024 we had 12000 users and 3 outages",
        "bind to 0.0.0.0:8080 or 127.0.0.1; netmask 255.255.255.0",
        "every other item: a[1::2]; C++ uses std::vector<int>",
        "at 12:30:45 the MAC 00:1A:2B:3C:4D:5E came up",
        "tracking number 1Z999AA10123456784",
        "card 4111 1111 1111 1112 (fails Luhn)",
        "not an IBAN: DE89 3704 0044 0532 0130 01",
        "QQ 12 34 56 C is the sample NINO prefix, which is never issued",
        "DNI with the wrong letter: 12345678A",
        "ask at support@ or visit example.com",
        "loopback ::1 and the any address ::",
    ],
)
def test_lookalikes_are_not_pii(scanner: PiiScanner, text: str) -> None:
    assert _found(scanner, text) == []


def test_unissued_ssn_areas_are_not_ssns(scanner: PiiScanner) -> None:
    # 666-12-3456 is still a Spanish mobile number, hence the narrow assertion.
    found = scanner.find("SSNs are never 000-12-3456, 666-12-3456 or 900-12-3456")
    assert "us_ssn" not in {m.type for m in found}
    assert [m.type for m in scanner.find("SSN 078-05-1120")] == ["us_ssn"]


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert luhn_ok("79927398713")  # the published Luhn example
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("GB82WEST12345698765433")
    assert not iban_ok("GB82WEST1234569876543")  # a GB IBAN has 22 characters
    assert verhoeff_ok("2363") and not verhoeff_ok("2364")  # the published Verhoeff example


def test_scan_redacts_every_span(scanner: PiiScanner) -> None:
    text = "Mail a@example.com or b@example.org, card 4111-1111-1111-1111, call +44 20 7946 0958."
    result = scanner.scan(text, CTX)
    assert result.redacted_text == (
        "Mail [REDACTED:EMAIL] or [REDACTED:EMAIL], card [REDACTED:CREDIT_CARD], "
        "call [REDACTED:PHONE]."
    )
    # The umbrella category, and one per type found (a policy may block cards only).
    assert result.scores == {
        "pii": 1.0,
        "pii:credit_card": 1.0,
        "pii:email": 1.0,
        "pii:phone": 1.0,
    }
    assert result.severity == {
        "pii": "high",
        "pii:credit_card": "high",
        "pii:email": "medium",
        "pii:phone": "medium",
    }
    assert result.notes == ("credit_card x1", "email x2", "phone x1")
    assert not any("example" in note or "4111" in note for note in result.notes)


def test_contact_details_are_medium_and_clean_text_scores_zero(scanner: PiiScanner) -> None:
    contact = scanner.scan("email me: someone@example.com", CTX)
    assert contact.severity == {"pii": "medium", "pii:email": "medium"}
    clean = scanner.scan("The meeting moved to Thursday at 3pm in room 12.", CTX)
    assert clean.scores == {"pii": 0.0}
    assert clean.severity == {} and clean.redacted_text is None


def test_a_card_number_is_not_also_a_phone_number(scanner: PiiScanner) -> None:
    found = scanner.find("4111 1111 1111 1111")
    assert [m.type for m in found] == ["credit_card"]


def test_a_match_holds_no_value() -> None:
    assert [f.name for f in dataclasses.fields(PiiMatch)] == ["type", "start", "end"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        PiiMatch("email", 0, 1).start = 2  # type: ignore[misc]


def test_types_option_limits_what_is_found() -> None:
    only_email = create({"types": ["email"]}, embedder=None)
    text = "x@example.com, +1 415 555 2671"
    assert [m.type for m in only_email.find(text)] == ["email"]
    assert {m.type for m in PiiScanner().find(text)} == {"email", "phone"}


def test_regions_decide_national_numbers_but_not_international_ones() -> None:
    us_only = create({"regions": ["us"]}, embedder=None)
    assert us_only.find("office: 020 7946 0958") == []
    assert [m.type for m in us_only.find("office: +44 20 7946 0958")] == ["phone"]
    no_regions = create({"regions": []}, embedder=None)
    assert no_regions.find("call (415) 555-2671") == []
    assert [m.type for m in no_regions.find("call +1 415 555 2671")] == ["phone"]


def test_phone_candidates_past_the_limit_are_noted() -> None:
    capped = create({"max_phone_candidates": 1}, embedder=None)
    text = "call +1 415 555 2671 or +44 20 7946 0958"
    result = capped.scan(text, CTX)
    assert result.notes == ("phone x1", "phone:candidates_capped")
    assert result.redacted_text == "call [REDACTED:PHONE] or +44 20 7946 0958"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"types": ["email", "passport"]}, "types"),
        ({"regions": ["US", "XX"]}, "regions"),
        ({"max_phone_candidates": -1}, "max_phone_candidates"),
        ({"redact": True}, "redact"),
    ],
)
def test_bad_options_raise_config_error(options: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=f"guard scanner pii: {field}"):
        create(options, embedder=None)


def test_entry_point_builds_the_scanner() -> None:
    scanner = create_scanner("pii")
    assert isinstance(scanner, PiiScanner) and scanner.name == "pii"
    assert PiiOptions().types == list(PII_TYPES)


def test_megabyte_inputs_return(scanner: PiiScanner) -> None:
    assert scanner.scan(zero_width_text(), CTX).scores == {"pii": 0.0}
    result = scanner.scan(random_text(), CTX)
    assert 0.0 <= result.scores["pii"] <= 1.0
