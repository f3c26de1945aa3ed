"""``llmline chain run|list|show`` against a gateway on loopback."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from tests.chains.conftest import Running, spec
from tests.cli.conftest import CLI

Start = Callable[..., Running]
MEAL = "meal=two eggs and a slice of toast"


def extractor(start_gateway: Start) -> Running:
    reply = quote('["2 eggs", "a slice of toast"]', safe="")
    return start_gateway(spec("extractor", f"fake:x?text={reply}"))


def test_chain_run_prints_the_steps_and_the_total(cli: CLI, start_gateway: Start) -> None:
    gw = extractor(start_gateway)
    args = ("chain", "run", "calories", "--input", MEAL, "-d", "extractor", "--url", gw.url)

    result = cli(*args, "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["chain"] == "calories" and data["value"] == 228.0
    assert [s["kind"] for s in data["steps"]] == ["prompt", "model", "parse", "tool", "aggregate"]
    assert data["steps"][1]["model"] == "extractor"

    result = cli(*args)
    assert result.code == 0, result.err
    assert "total_kcal = 228.0" in result.out
    assert "lookup" in result.out and "extract" in result.out


def test_chain_run_user_errors_are_one_line(cli: CLI, start_gateway: Start) -> None:
    gw = extractor(start_gateway)
    missing = cli("chain", "run", "calories", "-d", "extractor", "--url", gw.url)
    assert missing.code == 1
    assert missing.err.strip() == "error: chain calories needs the input meal (str)"
    bad_pair = cli("chain", "run", "calories", "--input", "meal", "--url", gw.url)
    assert (bad_pair.code, bad_pair.err.strip()) == (1, "error: --input 'meal': write NAME=VALUE")
    unknown = cli("chain", "run", "calories", "--input", MEAL, "-d", "nope", "--url", gw.url)
    assert unknown.code == 1
    # The in-process gateway logs its requests on stderr too: the error is the last line.
    error = unknown.err.strip().splitlines()[-1]
    assert error.startswith("error: step 'extract' (model): nope at ")
    assert "404 the model 'nope' does not exist" in error
    nowhere = cli(
        "chain", "run", "calories", "--input", MEAL, "-d", "x", "--url", "http://127.0.0.1:9"
    )
    assert nowhere.code == 1 and "cannot reach http://127.0.0.1:9/v1" in nowhere.err
    no_file = cli("chain", "run", "absent.yaml")
    assert no_file.code == 1 and "no chain file absent.yaml" in no_file.err


def test_chain_list_and_show(cli: CLI) -> None:
    listed = cli("chain", "list", "--json")
    assert listed.code == 0 and [c["name"] for c in listed.json()] == ["calories"]
    shown = cli("chain", "show", "calories", "--json")
    assert shown.code == 0
    assert shown.json()["steps"][2] == {
        "id": "foods",
        "output": "foods",
        "parse": "json",
        "schema": "list[str]",
    }
    text = cli("chain", "show", "calories")
    assert "output: total_kcal" in text.out
