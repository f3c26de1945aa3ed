"""Import a base model once, as safetensors, into the artifact store.

A source is a GGUF file (de-quantized to float32), a local Hugging Face
folder (``config.json`` + safetensors or ``.bin`` weights + tokenizer
files) or a built-in name.  The converted folder is staged privately,
checked (a GGUF conversion must reproduce the GGUF model's logits exactly),
published atomically as ``models/<name>/<version>/`` and registered as a
``base`` version.  Importing the same content again returns the existing
version without converting anything: the content hash is taken from the
source, before the slow part.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from llmline.errors import NotFoundError
from llmline.models import _hf
from llmline.models.builtin import BUILTIN_MODELS, builtin_model
from llmline.models.errors import ModelImportError
from llmline.models.info import ModelVersionInfo, check_model_name, folder_publisher
from llmline.models.registry import ModelRegistry
from llmline.storage.artifacts import sha256_file

if TYPE_CHECKING:
    from llmline.workspace import Workspace

__all__ = ["OFFLINE_HINT", "import_model"]

FORMAT = "hf-safetensors"
MANIFEST = "manifest.json"  # written last to object stores: readers see complete folders
OFFLINE_HINT = (
    "llmline runs offline: give a local GGUF file, a model folder, "
    f"or a built-in name ({', '.join(BUILTIN_MODELS)})"
)
# org/name, hf://..., https://huggingface.co/...: what a hub id looks like.
_HUB_ID = re.compile(r"^(?:hf://|https?://|[A-Za-z0-9][\w.-]*/[\w.-]+$)")
_GGUF_MAGIC = b"GGUF"
# Top-level files of a model folder that are not part of the imported model.
_SKIP_SUFFIXES = (".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack", ".onnx", ".ckpt")
_PROBE = "The capital of France is"
# safetensors' dtype codes, in the names torch and transformers use.
_DTYPE_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}


@dataclass(frozen=True)
class _Source:
    kind: Literal["gguf", "folder"]
    path: Path
    name: str
    label: str  # what the registry records as the version's source
    description: str = ""


def import_model(
    workspace: Workspace, source: str | Path, *, name: str | None = None, verify: bool = True
) -> ModelVersionInfo:
    """Import ``source`` as a base model version; see the module docstring.

    ``verify`` reloads a GGUF conversion and compares its logits with the
    GGUF-loaded model (a second copy of the weights in memory).
    The returned version's ``created`` is False when identical content was
    already registered under ``name``.
    """
    src = _locate(source, name)
    check_model_name(src.name)  # before the slow part, not after it
    registry = ModelRegistry(workspace.metadata)
    content_hash = _source_hash(src)
    existing = registry.find_by_hash(src.name, content_hash)
    if existing is not None:
        return existing
    with workspace.artifacts.stage() as staging:
        if src.kind == "gguf":
            details = _convert_gguf(src.path, staging, verify=verify)
        else:
            details = _copy_folder(src.path, staging)
        metadata = {
            **details,
            **_weights_summary(staging),
            "source": {"kind": src.kind, "path": str(src.path), "sha256": content_hash},
            "files": _file_hashes(staging),
        }
        (staging / MANIFEST).write_text(json.dumps(metadata, indent=2) + "\n", "utf-8")
        return registry.register(
            src.name,
            kind="base",
            uri=folder_publisher(workspace.artifacts, staging, src.name),
            format=FORMAT,
            source=src.label,
            metadata=metadata,
            content_hash=content_hash,
            description=src.description,
        )


# -- where the model comes from ------------------------------------------------
def _locate(source: str | Path, name: str | None) -> _Source:
    text = str(source)
    path = Path(text).expanduser()
    if path.exists():
        path = path.resolve()
        kind = _path_kind(path)
        return _Source(kind, path, name or _default_name(path), str(path))
    builtin = builtin_model(text)
    if builtin is not None:
        try:
            gguf = builtin.path()
        except FileNotFoundError as exc:
            raise ModelImportError(f"built-in model {text}: {exc}") from None
        return _Source("gguf", gguf, name or text, f"builtin:{text}", builtin.description)
    if _HUB_ID.match(text):
        raise ModelImportError(f"{text!r} is not a local file or folder, and {OFFLINE_HINT}")
    raise NotFoundError(f"no such file, folder or built-in model: {text!r} ({OFFLINE_HINT})")


def _path_kind(path: Path) -> Literal["gguf", "folder"]:
    if path.is_dir():
        if not (path / "config.json").is_file():
            if (path / "adapter_config.json").is_file():
                raise ModelImportError(
                    f"{path} is a PEFT adapter; import its base model, then register the "
                    "adapter as a tuned version"
                )
            raise ModelImportError(f"{path} has no config.json: not a Hugging Face model folder")
        return "folder"
    if path.suffix.lower() == ".gguf":
        return "gguf"
    raise ModelImportError(f"{path}: not a .gguf file or a model folder")


def _default_name(path: Path) -> str:
    stem = path.stem if path.is_file() else path.name
    name = re.sub(r"[^a-z0-9_.-]+", "-", stem.lower()).strip("-._")
    if not name:
        raise ModelImportError(f"cannot derive a model name from {path}; give --name")
    return name[:200]


def _source_hash(src: _Source) -> str:
    if src.kind == "gguf":
        return sha256_file(src.path)
    digest = hashlib.sha256()
    for file in _folder_files(src.path):
        digest.update(f"{file.name}\t{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def _folder_files(folder: Path) -> list[Path]:
    """The top-level files an import copies (weights in other formats are
    converted, not copied; hidden files and sub-folders are left out)."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith(_SKIP_SUFFIXES)
    ) + sorted(folder.glob("pytorch_model*.bin"))


# -- conversion ----------------------------------------------------------------
def _convert_gguf(path: Path, out: Path, *, verify: bool) -> dict[str, Any]:
    with open(path, "rb") as fh:
        if fh.read(4) != _GGUF_MAGIC:
            raise ModelImportError(f"{path}: not a GGUF file (bad magic number)")
    _hf.offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(path.parent), gguf_file=path.name, local_files_only=True
        )
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent),
            gguf_file=path.name,
            dtype=torch.float32,
            local_files_only=True,
            **_dequantize_option(),
        )
    except Exception as exc:  # any failure to read a user's file is the file's fault
        raise ModelImportError(f"{path}: cannot load GGUF model: {_one_line(exc)}") from None
    _check_dense(model, path)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    details: dict[str, Any] = {"converted_from": "gguf", "gguf_file": path.name}
    if verify:
        details["verified"] = _compare_logits(model, tokenizer, out, path)
    return details


def _dequantize_option() -> dict[str, Any]:
    """Ask transformers for plain float weights.

    transformers 5 may keep GGUF weights packed (a GGUF "quantizer" that
    also makes ``save_pretrained`` refuse: "quantized with gguf and is not
    serializable").  ``GgufConfig(dequantize=True)`` unpacks every weight
    and drops the quantizer, so the model saves as an ordinary checkpoint.
    """
    try:
        from transformers import GgufConfig
    except ImportError:  # transformers 4 always de-quantizes GGUF weights
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def _check_dense(model: Any, path: Path) -> None:
    import torch

    packed = getattr(model, "hf_quantizer", None) is not None
    if packed or any(p.dtype != torch.float32 for p in model.parameters()):
        raise ModelImportError(
            f"{path}: transformers kept the GGUF weights quantized; cannot convert to float32"
        )


def _compare_logits(model: Any, tokenizer: Any, out: Path, path: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(str(out), local_files_only=True)
    ids = tokenizer(_PROBE, return_tensors="pt").input_ids
    with torch.inference_mode():
        diff = (model(ids).logits - reloaded(ids).logits).abs().max().item()
    if diff != 0.0:
        raise ModelImportError(
            f"{path}: the converted model's logits differ from the GGUF model's "
            f"(max |diff| {diff:.3g}); nothing was registered"
        )
    return {"probe": _PROBE, "max_abs_logit_diff": diff}


def _copy_folder(folder: Path, out: Path) -> dict[str, Any]:
    files = _folder_files(folder)
    if not any(p.name.endswith(".safetensors") or p.suffix == ".bin" for p in files):
        raise ModelImportError(f"{folder} has no .safetensors or pytorch_model*.bin weights")
    if not any(p.name in ("tokenizer.json", "tokenizer_config.json") for p in files):
        raise ModelImportError(f"{folder} has no tokenizer (tokenizer.json/tokenizer_config.json)")
    for file in files:
        if file.name.endswith(".safetensors"):
            _check_safetensors(file)
        if file.suffix != ".bin":
            shutil.copy2(file, out / file.name)
    details: dict[str, Any] = {}
    if not any(p.name.endswith(".safetensors") for p in files):
        _bin_to_safetensors(folder, out)
        details["converted_from"] = "pytorch-bin"
    _check_loads(out, folder)
    return details


def _check_safetensors(file: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open handles are not iterable
                fh.get_slice(key).get_shape()
    except Exception as exc:  # the Rust error type is not importable as a class
        raise ModelImportError(f"{file}: not a valid safetensors file: {_one_line(exc)}") from None


def _bin_to_safetensors(folder: Path, out: Path) -> None:
    _hf.offline()
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:
        raise ModelImportError(
            f"{folder}: cannot load the .bin weights: {_one_line(exc)}"
        ) from None
    model.save_pretrained(out, safe_serialization=True)


def _check_loads(out: Path, folder: Path) -> None:
    """Load the staged model once: weights that do not fit the config must
    fail now, not at the first training run."""
    _hf.offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        AutoTokenizer.from_pretrained(str(out), local_files_only=True)
        # With output_loading_info the result is a (model, info) pair; the
        # stubs only know the plain return type.
        loaded: Any = AutoModelForCausalLM.from_pretrained(
            str(out), local_files_only=True, output_loading_info=True
        )
        info: dict[str, Any] = loaded[1]
    except Exception as exc:
        raise ModelImportError(f"{folder}: cannot load the model: {_one_line(exc)}") from None
    problems = {k: sorted(v) for k, v in info.items() if k.endswith("_keys") and v}
    if problems:
        summary = "; ".join(
            f"{k.replace('_', ' ')}: {', '.join(v[:3])}" for k, v in problems.items()
        )
        raise ModelImportError(f"{folder}: weights do not match config.json ({summary})")


# -- what gets recorded --------------------------------------------------------
def _weights_summary(folder: Path) -> dict[str, Any]:
    from safetensors import safe_open

    params = 0
    dtypes: set[str] = set()
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118
                tensor = fh.get_slice(key)
                count = 1
                for dim in tensor.get_shape():
                    count *= dim
                params += count
                code = str(tensor.get_dtype())
                dtypes.add(_DTYPE_NAMES.get(code, code.lower()))
    config = json.loads((folder / "config.json").read_text("utf-8"))
    return {
        "architecture": (config.get("architectures") or [None])[0],
        "model_type": config.get("model_type"),
        "parameters": params,
        "dtype": ",".join(sorted(dtypes)),
        "versions": _library_versions(),
    }


def _library_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {pkg: version(pkg) for pkg in ("torch", "transformers", "safetensors")}


def _file_hashes(folder: Path) -> dict[str, dict[str, Any]]:
    return {
        p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
