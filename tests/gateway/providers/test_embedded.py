"""The embedded provider on a real (tiny, random) model in a real workspace.

Nothing here is mocked: the model is a 2-layer Llama with SmolLM2's
tokenizer, imported into a workspace registry and loaded by the provider;
its weights are scaled up so that the next token depends on the whole
prompt (the stock 0.02-std init answers every prompt alike, which would
hide padding bugs).  Greedy output is checked against ``model.generate``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from llmline.errors import ConfigError
from llmline.gateway.errors import BackendUnavailable, InvalidRequestError
from llmline.gateway.providers import ProviderContext, create_provider
from llmline.gateway.providers._batching import TextStream
from llmline.gateway.providers.base import GenerationChunk, GenerationRequest
from llmline.gateway.providers.embedded import EmbeddedProvider, _prompt_text, create
from llmline.workspace import Workspace

QUESTIONS = (
    "hi",
    "How do I reverse a list in Python?",
    "Why is my dict ordered, and since when is that guaranteed by the language?",
    "What does the GIL do?",
)


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from llmline.testing.models import tiny_causal_lm

    return tiny_causal_lm(tmp_path_factory.mktemp("embedded-tiny"), input_dependent=True)


@pytest.fixture(scope="module")
def tiny_model_ws(tmp_path_factory: pytest.TempPathFactory, tiny_lm_dir: Path) -> Workspace:
    """A workspace whose registry holds ``tiny@1``."""
    from llmline.models import import_model
    from llmline.workspace import init_workspace

    workspace = init_workspace(tmp_path_factory.mktemp("embedded-ws"), load_sample_data=False)
    import_model(workspace, tiny_lm_dir, name="tiny", verify=False)
    return workspace


@pytest.fixture(scope="module")
def reference(tiny_lm_dir: Path) -> tuple[Any, Any]:
    """The same model loaded straight with transformers, to compare with."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model: Any = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    model.eval()
    return model, AutoTokenizer.from_pretrained(tiny_lm_dir)


@asynccontextmanager
async def serving(
    workspace: Workspace, ref: str = "tiny@1", **options: Any
) -> AsyncIterator[EmbeddedProvider]:
    provider = create(ref, ProviderContext(workspace, options))
    await provider.start()
    assert provider.health().ready, provider.health()
    try:
        yield provider
    finally:
        await provider.close()


def chat(question: str, **fields: Any) -> GenerationRequest:
    fields = {"max_tokens": 12, "temperature": 0.0, **fields}
    return GenerationRequest(messages=({"role": "user", "content": question},), **fields)


async def wait_until(condition: Callable[[], bool], what: str, limit_s: float = 60.0) -> None:
    """Poll ``condition``; ``limit_s`` only bounds a hang, it asserts no speed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.01)


def reference_ids(reference: tuple[Any, Any], question: str, max_new_tokens: int) -> list[int]:
    import torch

    model, tokenizer = reference
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id,
        )
    return [int(t) for t in out[0, ids.shape[1] :]]


# -- creation and loading ------------------------------------------------------------
def test_create_reads_options_and_rejects_bad_ones(tiny_model_ws: Workspace) -> None:
    provider = create(
        "embedded:tiny@1", ProviderContext(tiny_model_ws, {"max_batch_size": 3, "batch_wait_ms": 7})
    )
    assert (provider.ref, provider.settings.max_batch_size) == ("tiny@1", 3)
    assert provider.settings.batch_wait_ms == 7
    assert provider.health().state == "loading"
    # Through the entry-point registry, a bare registry reference is embedded.
    assert isinstance(create_provider("tiny@1", ProviderContext(tiny_model_ws)), EmbeddedProvider)
    with pytest.raises(ConfigError, match="max_batch_size"):
        create("tiny@1", ProviderContext(tiny_model_ws, {"max_batch_size": 0}))
    with pytest.raises(ConfigError, match="colour"):
        create("tiny@1", ProviderContext(tiny_model_ws, {"colour": "blue"}))
    with pytest.raises(ConfigError, match="workspace"):
        create("tiny@1", ProviderContext(None))


def test_load_failure_is_reported_not_raised(tiny_model_ws: Workspace) -> None:
    async def main() -> None:
        provider = create("no-such-model@1", ProviderContext(tiny_model_ws))
        await provider.start()
        health = provider.health()
        assert health.state == "failed"
        assert "no-such-model" in health.detail and "\n" not in health.detail
        with pytest.raises(BackendUnavailable, match="not ready"):
            await provider.generate(chat("hi"))
        await provider.close()

    asyncio.run(main())


def test_start_loads_in_a_thread_while_the_loop_serves(
    tiny_model_ws: Workspace, reference: tuple[Any, Any]
) -> None:
    _, tokenizer = reference

    async def main() -> None:
        provider = create("tiny@1", ProviderContext(tiny_model_ws))
        starting = asyncio.create_task(provider.start())
        ticks, states = 0, set()
        # A load on the event loop thread would finish before a second tick.
        while not starting.done():
            ticks += 1
            states.add(provider.health().state)
            await asyncio.sleep(0.001)
        await starting
        assert ticks > 1 and "loading" in states
        assert provider.health().ready and provider.decode_thread_alive
        text = "def f(x): return x * 2"
        assert provider.count_tokens(text) == len(
            tokenizer(text, add_special_tokens=False).input_ids
        )
        await provider.close()

    asyncio.run(main())


# -- generation ------------------------------------------------------------------
def test_greedy_matches_transformers_generate(
    tiny_model_ws: Workspace, reference: tuple[Any, Any]
) -> None:
    _, tokenizer = reference

    async def main() -> None:
        async with serving(tiny_model_ws) as provider:
            for question in QUESTIONS[:2]:
                first = await provider.generate(chat(question, max_tokens=10))
                again = await provider.generate(chat(question, max_tokens=10))
                expected = tokenizer.decode(
                    reference_ids(reference, question, 10), skip_special_tokens=True
                )
                assert first.text == again.text == expected
                assert (first.finish_reason, first.completion_tokens) == ("length", 10)
                assert first.ttft_ms is not None and first.ttft_ms > 0

    asyncio.run(main())


def test_chat_uses_the_template_and_completion_the_raw_prompt(
    tiny_model_ws: Workspace, reference: tuple[Any, Any]
) -> None:
    _, tokenizer = reference
    question = "How do I reverse a list in Python?"
    templated = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )

    async def main() -> None:
        async with serving(tiny_model_ws) as provider:
            as_chat = await provider.generate(chat(question, max_tokens=4))
            raw = await provider.generate(
                GenerationRequest(prompt=question, max_tokens=4, temperature=0)
            )
            same = await provider.generate(
                GenerationRequest(prompt=templated, max_tokens=4, temperature=0)
            )
        assert as_chat.prompt_tokens == len(
            tokenizer(templated, add_special_tokens=False).input_ids
        )
        assert raw.prompt_tokens == len(tokenizer(question).input_ids) < as_chat.prompt_tokens
        assert same.text == as_chat.text  # the template's text, sent as a completion

    asyncio.run(main())
    # A tokenizer without a chat template (a base model) gets the contents joined.
    plain = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    plain.chat_template = None
    request = GenerationRequest(
        messages=({"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"})
    )
    assert _prompt_text(plain, request) == "Be brief.\nhi"


def test_eos_ends_the_answer_with_stop(
    tmp_path: Path, tiny_lm_dir: Path, tiny_model_ws: Workspace, reference: tuple[Any, Any]
) -> None:
    from llmline.models import import_model

    _, tokenizer = reference
    ids = reference_ids(reference, QUESTIONS[1], 8)
    k = next(i for i in range(2, len(ids)) if ids[i] not in ids[:i])
    # The same weights with one more end-of-sequence id: the k-th greedy token.
    folder = tmp_path / "tiny-eos"
    shutil.copytree(tiny_lm_dir, folder)
    config_file = folder / "generation_config.json"
    config = json.loads(config_file.read_text())
    config["eos_token_id"] = [config["eos_token_id"], ids[k]]
    config_file.write_text(json.dumps(config))
    import_model(tiny_model_ws, folder, name="tiny-eos", verify=False)

    async def main() -> None:
        async with serving(tiny_model_ws, "tiny-eos@1") as provider:
            out = await provider.generate(chat(QUESTIONS[1], max_tokens=8))
        assert (out.finish_reason, out.completion_tokens) == ("stop", k + 1)
        assert out.text == tokenizer.decode(ids[:k], skip_special_tokens=True)

    asyncio.run(main())


# peft asks transformers a deprecated question while wrapping the model.
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_serves_a_lora_adapter_version(
    tmp_path: Path, tiny_lm_dir: Path, tiny_model_ws: Workspace, reference: tuple[Any, Any]
) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    from llmline.models import ModelRegistry

    base, tokenizer = reference
    torch.manual_seed(1)
    # Random B matrices (not peft's zeros), so the adapter changes the answers.
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    tuned: Any = get_peft_model(type(base).from_pretrained(tiny_lm_dir), config)
    tuned.eval()
    tuned.save_pretrained(tmp_path / "adapter")
    ModelRegistry(tiny_model_ws.metadata).register(
        "tiny-lora",
        kind="tuned",
        uri=str(tmp_path / "adapter"),
        format="peft-lora",
        source="test",
        base="tiny@1",
    )
    expected = tokenizer.decode(
        reference_ids((tuned, tokenizer), QUESTIONS[1], 10), skip_special_tokens=True
    )

    async def main() -> tuple[str, str]:
        async with serving(tiny_model_ws, "embedded:tiny-lora@1") as provider:
            lora = await provider.generate(chat(QUESTIONS[1], max_tokens=10))
        async with serving(tiny_model_ws) as provider:
            plain = await provider.generate(chat(QUESTIONS[1], max_tokens=10))
        return lora.text, plain.text

    lora_text, base_text = asyncio.run(main())
    assert lora_text == expected != base_text


def test_max_tokens_and_stop_strings(tiny_model_ws: Workspace) -> None:
    async def main() -> None:
        async with serving(tiny_model_ws) as provider:
            full = await provider.generate(chat(QUESTIONS[1], max_tokens=16))
            assert (full.finish_reason, full.completion_tokens) == ("length", 16)
            short = await provider.generate(chat(QUESTIONS[1], max_tokens=3))
            assert (short.finish_reason, short.completion_tokens) == ("length", 3)
            assert full.text.startswith(short.text) and len(short.text) < len(full.text)
            # A stop string from the middle of the greedy answer cuts it there.
            stop = full.text[len(full.text) // 2 :][:3]
            cut = await provider.generate(chat(QUESTIONS[1], max_tokens=16, stop=("@@@", stop)))
            assert cut.finish_reason == "stop"
            assert cut.text == full.text[: full.text.find(stop)]
            assert cut.completion_tokens < 16
            streamed = [
                c async for c in provider.stream(chat(QUESTIONS[1], max_tokens=16, stop=(stop,)))
            ]
            assert "".join(c.text for c in streamed) == cut.text

    asyncio.run(main())


def test_stream_chunks_concatenate_to_the_generated_text(tiny_model_ws: Workspace) -> None:
    async def main() -> None:
        async with serving(tiny_model_ws) as provider:
            whole = await provider.generate(chat(QUESTIONS[2], max_tokens=20))
            chunks = [c async for c in provider.stream(chat(QUESTIONS[2], max_tokens=20))]
        assert len(chunks) > 2
        assert all(c.finish_reason is None for c in chunks[:-1])
        last = chunks[-1]
        assert last == GenerationChunk("", "length", whole.prompt_tokens, 20)
        assert "".join(c.text for c in chunks) == whole.text

    asyncio.run(main())


def test_top_p_and_bad_parameters(tiny_model_ws: Workspace) -> None:
    async def main() -> None:
        async with serving(tiny_model_ws) as provider:
            greedy = await provider.generate(chat(QUESTIONS[3]))
            # A nucleus of a single token is greedy decoding, whatever the seed.
            narrow = await provider.generate(chat(QUESTIONS[3], temperature=1.5, top_p=1e-6))
            assert narrow.text == greedy.text
            with pytest.raises(InvalidRequestError, match="temperature"):
                await provider.generate(chat("hi", temperature=-1.0))
            with pytest.raises(InvalidRequestError, match="top_p"):
                await provider.generate(chat("hi", top_p=0.0))
            with pytest.raises(InvalidRequestError) as info:
                await provider.generate(GenerationRequest(prompt="word " * 1100, max_tokens=4))
            assert info.value.code == "context_length_exceeded"
            # Near the context limit (1024 positions) the answer ends as "length".
            long_prompt = "word " * 1000
            near = await provider.generate(GenerationRequest(prompt=long_prompt, max_tokens=100))
            assert near.prompt_tokens < 1024 < near.prompt_tokens + 100
            assert (near.finish_reason, near.completion_tokens) == (
                "length",
                1024 - near.prompt_tokens,
            )

    asyncio.run(main())


# -- batching ----------------------------------------------------------------------
@pytest.mark.parametrize("drop_finished_rows", [True, False])
def test_concurrent_requests_are_batched_with_the_same_answers(
    tiny_model_ws: Workspace, drop_finished_rows: bool
) -> None:
    # Different lengths, so rows leave the batch at different steps.
    requests = [chat(q, max_tokens=n) for q, n in zip(QUESTIONS, (3, 12, 7, 20), strict=True)]

    async def main() -> None:
        async with serving(tiny_model_ws, batch_wait_ms=50) as provider:
            # Both ways a finished row can be handled (the second is the
            # fallback for caches that cannot drop rows).
            assert provider._engine is not None
            provider._engine.drop_finished_rows = drop_finished_rows
            alone = [await provider.generate(r) for r in requests]
            assert provider.stats.max_batch_seen == 1
            together = await asyncio.gather(*(provider.generate(r) for r in requests))
            stats = provider.stats
        assert stats.max_batch_seen > 1
        assert stats.batches_run < 2 * len(requests)
        # Left padding and rows leaving must not change any row's answer.
        assert [o.text for o in together] == [o.text for o in alone]
        assert [o.completion_tokens for o in together] == [3, 12, 7, 20]
        assert [o.prompt_tokens for o in together] == [o.prompt_tokens for o in alone]

    asyncio.run(main())


def test_seeded_sampling_is_the_same_batched_or_alone(tiny_model_ws: Workspace) -> None:
    def sampled(question: str, seed: int) -> GenerationRequest:
        return chat(question, temperature=1.5, seed=seed, max_tokens=16)

    async def main() -> None:
        async with serving(tiny_model_ws, batch_wait_ms=50) as provider:
            alone = [(await provider.generate(sampled(q, 7))).text for q in QUESTIONS]
            batched = await asyncio.gather(*(provider.generate(sampled(q, 7)) for q in QUESTIONS))
            other_seed = [(await provider.generate(sampled(q, 8))).text for q in QUESTIONS]
            assert provider.stats.max_batch_seen > 1
        assert [o.text for o in batched] == alone
        assert other_seed != alone  # the seed matters, so the equality above means something

    asyncio.run(main())


# -- cancellation and shutdown --------------------------------------------------------
def test_cancelled_stream_frees_its_row(tiny_model_ws: Workspace) -> None:
    async def main() -> None:
        async with serving(tiny_model_ws) as provider:
            first = asyncio.Event()

            async def consume() -> None:
                async for _chunk in provider.stream(chat(QUESTIONS[0], max_tokens=900)):
                    first.set()

            task = asyncio.create_task(consume())
            await first.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await wait_until(lambda: provider.active_requests == 0, "the row to leave")
            stats = provider.stats
            assert (stats.rows_cancelled, stats.rows_finished) == (1, 0)
            assert 0 < stats.tokens_generated < 900
            # The engine still serves after dropping the batch.
            assert (await provider.generate(chat("hi", max_tokens=2))).completion_tokens == 2

    asyncio.run(main())


def test_cancelled_generate_frees_its_row(tiny_model_ws: Workspace) -> None:
    async def main() -> None:
        async with serving(tiny_model_ws) as provider:
            task = asyncio.create_task(provider.generate(chat(QUESTIONS[1], max_tokens=900)))
            await wait_until(lambda: provider.stats.tokens_generated > 0, "decoding to start")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await wait_until(lambda: provider.active_requests == 0, "the row to leave")
            assert provider.stats.rows_cancelled == 1
            assert provider.stats.tokens_generated < 900

    asyncio.run(main())


def test_close_joins_the_decode_thread_and_fails_running_requests(
    tiny_model_ws: Workspace,
) -> None:
    def decode_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("llmline-decode-")]

    async def main() -> None:
        before = len(decode_threads())
        provider = create("tiny@1", ProviderContext(tiny_model_ws))
        await provider.start()
        assert len(decode_threads()) == before + 1
        running = asyncio.create_task(provider.generate(chat(QUESTIONS[1], max_tokens=900)))
        await wait_until(lambda: provider.stats.tokens_generated > 0, "decoding to start")
        await provider.close()
        assert len(decode_threads()) == before and not provider.decode_thread_alive
        with pytest.raises(BackendUnavailable, match="shut down"):
            await running
        assert provider.health().state == "failed"
        with pytest.raises(BackendUnavailable):
            await provider.generate(chat("hi"))

    asyncio.run(main())


def test_a_failing_batch_fails_its_rows_and_the_engine_goes_on(
    reference: tuple[Any, Any],
) -> None:
    from llmline.gateway.errors import BackendError
    from llmline.gateway.providers._batching import BatchEngine, Row, RowDone, SamplingParams

    model, tokenizer = reference
    engine = BatchEngine(model, tokenizer, max_batch_size=2, batch_wait_s=0.0, name="t")
    events: dict[str, list[Any]] = {"bad": [], "good": []}
    done = {name: threading.Event() for name in events}

    def sink(name: str) -> Callable[[Any], None]:
        def put(event: Any) -> None:
            events[name].append(event)
            if not isinstance(event, str):
                done[name].set()

        return put

    try:
        # An id past the vocabulary makes the embedding lookup raise.
        engine.submit(Row([10**7], SamplingParams(max_tokens=3), sink("bad")))
        assert done["bad"].wait(60)
        engine.submit(Row(tokenizer("hello").input_ids, SamplingParams(3), sink("good")))
        assert done["good"].wait(60)
    finally:
        engine.close()
    assert isinstance(events["bad"][-1], BackendError)
    assert "generation failed" in str(events["bad"][-1])
    assert isinstance(events["good"][-1], RowDone)
    assert events["good"][-1].completion_tokens == 3
    assert not engine.thread.is_alive()


# -- incremental text ---------------------------------------------------------------
def test_text_stream_never_splits_characters(reference: tuple[Any, Any]) -> None:
    _, tokenizer = reference
    text = "naïve café 🙂 — 日本語 ok"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    stream = TextStream(lambda seq: tokenizer.decode(seq, skip_special_tokens=True))
    pieces = [stream.add(token) for token in ids]
    assert len(ids) > len(text.split())  # multi-byte characters span several tokens
    assert all("\ufffd" not in piece for piece in pieces)
    assert "".join(pieces) + stream.rest() == text


def test_text_stream_holds_back_what_may_become_a_stop() -> None:
    stream = TextStream(lambda seq: "".join(map(chr, seq)), stop=("###",))
    pieces = []
    for char in "ab##c###d":
        pieces.append(stream.add(ord(char)))
        if stream.stopped:
            break
    assert "".join(pieces) == "ab##c" and stream.stopped
    assert pieces[2:4] == ["", ""]  # "#", "##": perhaps the start of "###"
    assert stream.text == "ab##c" and stream.rest() == ""
