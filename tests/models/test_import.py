"""Importing base models (tiny HF folders, bad files, hub ids, the built-in
GGUF) and loading registered versions, including a LoRA adapter."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmline.errors import IntegrityError, NotFoundError
from llmline.models import (
    DeviceUnavailableError,
    ModelError,
    ModelImportError,
    ModelRegistry,
    folder_publisher,
    import_model,
    load_model,
    verify_files,
)
from llmline.testing.models import tiny_causal_lm
from llmline.workspace import Workspace, init_workspace

torch = pytest.importorskip("torch")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama folder, written once per test session (the CLI
    tests look for it at the same place)."""
    target = tmp_path_factory.getbasetemp() / "tiny-smollm2"
    if not (target / "config.json").is_file():
        tiny_causal_lm(target)
    return target


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = init_workspace(tmp_path / "ws", load_sample_data=False)
    yield workspace
    workspace.close()


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _nothing_registered(ws: Workspace) -> None:
    assert ModelRegistry(ws.metadata).list() == []
    models = Path(ws.artifacts.root) / "models"
    assert not models.exists() or not any(models.rglob("*.safetensors"))


# -- HF folders ---------------------------------------------------------------------
def test_import_folder_registers_and_loads(ws: Workspace, tiny_model: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model, tmp_path / "Tiny Llama")
    info = import_model(ws, folder)
    assert info.created and info.ref == "tiny-llama@1" and info.kind == "base"
    assert info.format == "hf-safetensors" and info.source == str(folder)
    meta = info.metadata
    assert meta["architecture"] == "LlamaForCausalLM" and meta["dtype"] == "float32"
    assert meta["parameters"] > 3_000_000  # the embedding alone is 49152 x 64
    assert meta["source"] == {"kind": "folder", "path": str(folder), "sha256": info.content_hash}
    stored = Path(info.uri)
    assert stored == Path(ws.artifacts.root) / "models" / "tiny-llama" / "1"
    assert set(meta["files"]) >= {"config.json", "model.safetensors", "tokenizer.json"}
    assert (stored / "manifest.json").is_file()
    verify_files(ws, info)

    loaded = load_model(ws, "tiny-llama", device="auto")
    assert loaded.device == ("cuda" if torch.cuda.is_available() else "cpu")
    ids = loaded.tokenizer("def f(): pass", return_tensors="pt").input_ids.to(loaded.device)
    with torch.inference_mode():
        logits = loaded.model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(loaded.tokenizer))
    assert loaded.model.dtype == torch.float32 and loaded.info == info
    half = load_model(ws, "tiny-llama@1", device="cpu", dtype="bfloat16")
    assert half.model.dtype == torch.bfloat16


def test_reimport_reuses_the_version(ws: Workspace, tiny_model: Path, tmp_path: Path) -> None:
    first = import_model(ws, tiny_model, name="tiny")
    again = import_model(ws, _copy(tiny_model, tmp_path / "copy"), name="tiny")
    assert not again.created and again.ref == first.ref == "tiny@1"
    (tmp_path / "copy" / "config.json").write_text(
        (tiny_model / "config.json").read_text().replace('"use_cache": true', '"use_cache": false')
    )
    changed = import_model(ws, tmp_path / "copy", name="tiny")
    assert changed.created and changed.ref == "tiny@2"


def test_tampered_files_fail_verification(ws: Workspace, tiny_model: Path) -> None:
    info = import_model(ws, tiny_model, name="tiny")
    with open(Path(info.uri) / "config.json", "a") as fh:
        fh.write(" ")
    with pytest.raises(IntegrityError, match=r"config\.json changed"):
        load_model(ws, "tiny", device="cpu", verify=True)


# peft calls a transformers API that transformers deprecated; not ours to fix.
@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")
def test_adapter_versions_load_base_plus_lora(ws: Workspace, tiny_model: Path) -> None:
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    import_model(ws, tiny_model, name="tiny")
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model), local_files_only=True)
    lora = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    registry = ModelRegistry(ws.metadata)
    with ws.artifacts.stage() as staging:
        lora.save_pretrained(staging)
        tuned = registry.register(
            "tiny-faq",
            kind="tuned",
            uri=folder_publisher(ws.artifacts, staging, "tiny-faq"),
            format="peft-lora",
            base="tiny@1",
            source="run:test",
        )
    loaded = load_model(ws, tuned.ref, device="cpu")
    assert isinstance(loaded.model, PeftModel)
    assert loaded.base is not None and loaded.base.ref == "tiny@1"
    assert loaded.tokenizer("hi").input_ids


# -- bad sources --------------------------------------------------------------------
@pytest.mark.parametrize(
    "source", ["HuggingFaceTB/SmolLM2-135M-Instruct", "hf://org/model", "https://huggingface.co/x"]
)
def test_hub_ids_are_refused(ws: Workspace, source: str) -> None:
    with pytest.raises(ModelImportError) as caught:
        import_model(ws, source)
    message = str(caught.value)
    assert "llmline runs offline: give a local GGUF file, a model folder, or a built-in name" in (
        message
    )
    assert "smollm2-135m-instruct" in message and source in message
    _nothing_registered(ws)


def test_unknown_source_is_not_found(ws: Workspace, tiny_model: Path) -> None:
    with pytest.raises(NotFoundError, match="no such file, folder or built-in model: 'smollm2'"):
        import_model(ws, "smollm2")
    with pytest.raises(ModelError, match="invalid model name 'org/tiny'"):
        import_model(ws, tiny_model, name="org/tiny")


def test_corrupt_gguf_is_refused(ws: Workspace, tmp_path: Path) -> None:
    garbage = tmp_path / "model.gguf"
    garbage.write_bytes(b"\x00\x01garbage" * 1000)
    with pytest.raises(ModelImportError, match=r"model\.gguf: not a GGUF file"):
        import_model(ws, garbage)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 64)
    with pytest.raises(ModelImportError, match=r"truncated\.gguf: cannot load GGUF model") as e:
        import_model(ws, truncated)
    assert "\n" not in str(e.value)
    _nothing_registered(ws)


def test_corrupt_safetensors_is_refused(ws: Workspace, tiny_model: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model, tmp_path / "broken")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])
    with pytest.raises(ModelImportError, match=r"broken/model\.safetensors: not a valid safet"):
        import_model(ws, folder)
    weights.write_bytes(b"not safetensors at all")
    with pytest.raises(ModelImportError, match=r"model\.safetensors: not a valid safetensors"):
        import_model(ws, folder)
    _nothing_registered(ws)


def test_weights_that_do_not_fit_the_config_are_refused(
    ws: Workspace, tiny_model: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    folder = _copy(tiny_model, tmp_path / "short")
    tensors = load_file(str(folder / "model.safetensors"))
    del tensors["model.layers.1.mlp.down_proj.weight"]
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelImportError, match=r"do not match config\.json.*down_proj"):
        import_model(ws, folder)
    _nothing_registered(ws)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no config.json"),
        ({"adapter_config.json": "{}"}, "is a PEFT adapter"),
        ({"config.json": "{}"}, "no .safetensors"),
    ],
)
def test_folders_that_are_not_models(
    ws: Workspace, tmp_path: Path, files: dict[str, str], message: str
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises(ModelImportError, match=message):
        import_model(ws, folder)


def test_explicit_cuda_without_cuda_is_a_user_error(
    ws: Workspace, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_model(ws, tiny_model, name="tiny")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailableError, match="'cuda' was asked for but CUDA is not"):
        load_model(ws, "tiny", device="cuda")
    assert load_model(ws, "tiny", device="auto").device == "cpu"


# -- the built-in GGUF --------------------------------------------------------------
@pytest.mark.slow
def test_builtin_gguf_import_matches_the_gguf_model(ws: Workspace) -> None:
    from transformers import AutoModelForCausalLM

    from llmline.models.builtin import smollm2_gguf_path

    info = import_model(ws, "smollm2-135m-instruct")
    assert info.ref == "smollm2-135m-instruct@1" and info.source == "builtin:smollm2-135m-instruct"
    assert info.metadata["verified"]["max_abs_logit_diff"] == 0.0
    assert info.metadata["parameters"] == 134_515_008
    loaded = load_model(ws, info.ref, device="cpu")
    gguf = smollm2_gguf_path()
    reference = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
    )
    messages = [{"role": "user", "content": "How do I reverse a list in Python?"}]
    ids = loaded.tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    with torch.inference_mode():
        assert torch.equal(loaded.model(ids).logits, reference(ids).logits)
    # The same GGUF by path under the same name is the same content: no conversion.
    again = import_model(ws, gguf, name="smollm2-135m-instruct")
    assert not again.created and again.ref == info.ref
