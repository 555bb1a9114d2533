"""Reading, checking and converting tagger weights: official ``.pth`` files, bare state dicts, safetensors.

Loading is strict. The only keys we drop are the ones the model recomputes or never uses, each
named here: the Swin ``relative_position_index`` / ``attn_mask`` buffers and RAM's captioning
branch. Everything else must match by name and shape, or the error names the key and says which
model the file looks like.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ram_model.config import RamConfig
from ram_model.errors import CheckpointError, ChecksumError

RECOMPUTED_BUFFERS = ("relative_position_index", "attn_mask")
CAPTIONING_PREFIXES = ("tag_encoder.", "text_decoder.")
RENAMED_PREFIXES = {"vision_multi.": "tagging_head."}
_SHOWN_KEYS = 5

StateDict = dict[str, torch.Tensor]


def read_state_dict(source: str | Path | Mapping[str, torch.Tensor]) -> StateDict:
    """Tensors of a checkpoint file or mapping, without any clean-up.

    ``.safetensors`` files are memory-mapped; anything else is read with
    ``torch.load(weights_only=True)`` (plain tensors only: a downloaded pickle never runs code),
    taking ``['model']`` (official files) or ``['state_dict']`` when present.
    """
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): download or copy it again")
    if path.suffix == ".safetensors":
        try:
            return load_file(path)
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
    return dict(data)


def clean_state_dict(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """Drop the recomputed buffers and RAM's captioning branch; rename ``vision_multi``."""
    cleaned: StateDict = {}
    for key, value in state_dict.items():
        if key.rsplit(".", 1)[-1] in RECOMPUTED_BUFFERS or key.startswith(CAPTIONING_PREFIXES):
            continue
        for old, new in RENAMED_PREFIXES.items():
            if key.startswith(old):
                key = new + key[len(old):]
        cleaned[key] = value
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


def load_weights(model: nn.Module, source: str | Path | Mapping[str, torch.Tensor], *, assign: bool = False) -> None:
    """Load a path (.pth or .safetensors) or a state dict into ``model``, strictly.

    ``assign=True`` adopts the file's tensors instead of copying them (for a model whose
    parameters were never initialised, see :func:`build_for_loading`).
    """
    origin = str(source) if isinstance(source, (str, Path)) else "state dict"
    original = read_state_dict(source)
    state_dict = clean_state_dict(original)
    check_state_dict(model, state_dict, origin, original)
    model.load_state_dict(state_dict, strict=True, assign=assign)


def build_for_loading(factory: Callable[[], nn.Module]) -> nn.Module:
    """Build a model without initialising its parameters, ready for ``load_weights(..., assign=True)``.

    Parameters are created on the meta device (no 1.3 GB random init), then given uninitialised
    CPU storage; the buffers the model computes itself are filled in again.
    """
    with torch.device("meta"):
        model = factory()
    model.to_empty(device="cpu")
    for module in model.modules():
        init = getattr(module, "init_non_persistent_buffers", None)
        if init is not None:
            init()
    return model


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


def build_meta(factory: Callable[[], nn.Module]) -> nn.Module:
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
