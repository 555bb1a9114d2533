"""Reading, checking and converting tagger weights: official ``.pth`` files, bare state dicts, safetensors.

Loading is strict. The only keys we drop are the ones the model recomputes or never uses, each
named here: the Swin ``relative_position_index`` / ``attn_mask`` buffers and RAM's captioning
branch. Everything else must match by name and shape, or the error names the key and says which
model the file looks like.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ram_model.config import RamConfig
from ram_model.errors import CheckpointError, ChecksumError

ModuleT = TypeVar("ModuleT", bound=nn.Module)

RECOMPUTED_BUFFERS = ("relative_position_index", "attn_mask")
CAPTIONING_PREFIXES = ("tag_encoder.", "text_decoder.")
RENAMED_PREFIXES = {"vision_multi.": "tagging_head."}
_SHOWN_KEYS = 5
# Tensors converted to another precision while loading are read this many bytes at a time.
_CONVERT_SLICE_BYTES = 64 << 20
_SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}

StateDict = dict[str, torch.Tensor]


def read_state_dict(
    source: str | Path | Mapping[str, torch.Tensor], dtypes: Mapping[str, torch.dtype] | None = None
) -> StateDict:
    """Tensors of a checkpoint file or mapping, without any clean-up.

    ``.safetensors`` files are memory-mapped; anything else is read with
    ``torch.load(weights_only=True)`` (plain tensors only: a downloaded pickle never runs code),
    taking ``['model']`` (official files) or ``['state_dict']`` when present.

    ``dtypes`` maps (cleaned) tensor names to the dtype to hold them in. From a safetensors file
    those tensors are read, not memory-mapped, and converted a slice at a time, so no
    full-precision copy of them stays resident.
    """
    if isinstance(source, Mapping):
        return _converted(dict(source), dtypes)
    path = Path(source)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): download or copy it again")
    if path.suffix == ".safetensors":
        try:
            return _read_safetensors(path, dtypes) if dtypes else load_file(path)
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(
                f"cannot read {path}: not a complete safetensors file ({exc}); convert or import it again"
            ) from exc
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # noqa: BLE001 - the weights-only unpickler raises anything on garbage input
        raise CheckpointError(
            f"cannot read {path}: the file is truncated or not a PyTorch checkpoint ({_first_line(exc)}). "
            "Download it again and compare its sha256 with the published one."
        ) from exc
    for key in ("model", "state_dict"):
        if isinstance(data, Mapping) and isinstance(data.get(key), Mapping):
            data = data[key]
            break
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors (expected a dict with a 'model' entry)")
    return _converted(dict(data), dtypes)


def _read_safetensors(path: Path, dtypes: Mapping[str, torch.dtype]) -> StateDict:
    """The tensors named in ``dtypes`` read a slice at a time into their new precision; the rest read whole."""
    tensors: StateDict = {}
    # One read buffer for every slice: temporary buffers freed between the kept tensors would
    # leave holes in the heap that stay resident.
    buffer = torch.empty(_CONVERT_SLICE_BYTES, dtype=torch.uint8)
    with safe_open(path, framework="pt", backend="pread") as file, open(path, "rb") as handle:
        offsets = _data_offsets(handle)
        for key in file.offset_keys():
            dtype = dtypes.get(clean_key(key) or "")
            if dtype is None:
                tensors[key] = file.get_tensor(key)
                continue
            stored = file.get_slice(key)
            tensor = torch.empty(stored.get_shape(), dtype=dtype)
            flat = tensor.view(-1)
            source = buffer.view(_SAFETENSORS_DTYPES[stored.get_dtype()])
            handle.seek(offsets[key])
            for start in range(0, flat.numel(), source.numel()):
                part = source[: min(source.numel(), flat.numel() - start)]
                if handle.readinto(part.view(torch.uint8).numpy().data) != part.nbytes:
                    raise ValueError(f"tensor {key} ends before its recorded size")
                flat[start : start + part.numel()] = part
            tensors[key] = tensor
    return tensors


def _data_offsets(handle: BinaryIO) -> dict[str, int]:
    """Where each tensor's bytes start in a safetensors file: after the 8-byte header length and the JSON header."""
    handle.seek(0)
    (length,) = struct.unpack("<Q", handle.read(8))
    header = json.loads(handle.read(length))
    return {key: 8 + length + entry["data_offsets"][0] for key, entry in header.items() if key != "__metadata__"}


def _converted(state_dict: StateDict, dtypes: Mapping[str, torch.dtype] | None) -> StateDict:
    if not dtypes:
        return state_dict
    for key, value in state_dict.items():
        dtype = dtypes.get(clean_key(key) or "")
        if dtype is not None:
            state_dict[key] = value.to(dtype)
    return state_dict


def clean_key(key: str) -> str | None:
    """A checkpoint key as our model names it, or None for a key we drop (see :func:`clean_state_dict`)."""
    if key.rsplit(".", 1)[-1] in RECOMPUTED_BUFFERS or key.startswith(CAPTIONING_PREFIXES):
        return None
    for old, new in RENAMED_PREFIXES.items():
        if key.startswith(old):
            return new + key[len(old):]
    return key


def clean_state_dict(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """Drop the recomputed buffers and RAM's captioning branch; rename ``vision_multi``."""
    cleaned: StateDict = {}
    for key, value in state_dict.items():
        new_key = clean_key(key)
        if new_key is not None:
            cleaned[new_key] = value
    return cleaned


def describe_state_dict(state_dict: Mapping[str, torch.Tensor]) -> str:
    """A person-readable guess of what a checkpoint is (RAM++ or RAM, backbone width, tag count)."""
    keys = set(state_dict)
    label = state_dict.get("label_embed")
    if label is None:
        if any(k.startswith("visual.") or k.startswith("model.visual.") for k in keys):
            return "a CLIP model, not a tagger"
        return "not a RAM/RAM++ tagger (it has no label_embed)"
    patch = state_dict.get("visual_encoder.patch_embed.proj.weight")
    width = f"Swin embed {patch.shape[0]}" if patch is not None else "no Swin backbone"
    if "reweight_scale" in keys:
        kind = "RAM++"
        rows = f"label_embed {tuple(label.shape)}"
    else:
        kind = "RAM"
        rows = f"{label.shape[0]} tags"
    if any(k.startswith(CAPTIONING_PREFIXES) for k in keys):
        kind += " (with its captioning branch)"
    return f"a {kind} checkpoint ({width}, {rows})"


def check_state_dict(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    origin: str = "checkpoint",
    original: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Raise :class:`CheckpointError` unless keys and shapes match the model's exactly.

    ``original`` is the file's state dict before clean-up, used to say what the file looks like.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: file {tuple(state_dict[k].shape)}, model {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or mismatched):
        return
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_shorten(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_shorten(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {_shorten(mismatched)}")
    config = getattr(model, "config", None)
    wanted = f"{'RAM++' if getattr(config, 'variant', '') == 'ram_plus' else 'RAM'} model" if config else "model"
    raise CheckpointError(
        f"{origin} does not fit the {wanted}: {'; '.join(problems)}. "
        f"The file looks like {describe_state_dict(original or state_dict)}; choose the matching --arch."
    )


def load_weights(
    model: nn.Module,
    source: str | Path | Mapping[str, torch.Tensor],
    *,
    assign: bool = False,
    dtypes: Mapping[str, torch.dtype] | None = None,
) -> None:
    """Load a path (.pth or .safetensors) or a state dict into ``model``, strictly.

    ``assign=True`` adopts the file's tensors instead of copying them, for a model built on the
    meta device (:func:`build_meta`): nothing is allocated twice, a safetensors file stays
    memory-mapped, and the buffers the model computes itself are computed once its parameters
    are real. With ``assign``, ``dtypes`` holds the named parameters in another precision
    (see :func:`read_state_dict`).
    """
    origin = str(source) if isinstance(source, (str, Path)) else "state dict"
    original = read_state_dict(source, dtypes if assign else None)
    state_dict = clean_state_dict(original)
    check_state_dict(model, state_dict, origin, original)
    model.load_state_dict(state_dict, strict=True, assign=assign)
    if assign:
        for module in model.modules():
            init = getattr(module, "init_non_persistent_buffers", None)
            if init is not None:
                init()


def save_safetensors(state_dict: Mapping[str, torch.Tensor], path: str | Path, metadata: dict[str, str]) -> None:
    """Write a safetensors file atomically (temporary file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    save_file({k: v.contiguous() for k, v in state_dict.items()}, tmp, metadata=metadata)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    tmp.replace(path)


def convert_checkpoint(source: str | Path, dest: str | Path, config: RamConfig, metadata: dict[str, str]) -> None:
    """Convert an official or bare checkpoint into a compact safetensors file of the inference tensors."""
    from ram_model.ram import RamTagger

    original = read_state_dict(source)
    state_dict = clean_state_dict(original)
    check_state_dict(build_meta(lambda: RamTagger(config)), state_dict, str(source), original)
    save_safetensors(state_dict, dest, metadata)


def build_meta(factory: Callable[[], ModuleT]) -> ModuleT:
    """A model on the meta device: its names and shapes, with no memory behind them."""
    with torch.device("meta"):
        return factory()


def sha256_file(path: str | Path, progress: Callable[[int], None] | None = None, block: int = 1 << 22) -> str:
    """The sha256 of a file, read in blocks; ``progress`` is called with each block's size."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
            if progress:
                progress(len(chunk))
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str, progress: Callable[[int], None] | None = None) -> None:
    actual = sha256_file(path, progress)
    if actual != expected.lower():
        raise ChecksumError(
            f"{path} has sha256 {actual}, but {expected} was expected: the file is damaged or a different "
            "file. Delete it and download it again."
        )


def _shorten(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN_KEYS])
    return shown + (f" and {len(items) - _SHOWN_KEYS} more" if len(items) > _SHOWN_KEYS else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
