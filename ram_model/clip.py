"""The CLIP embedder (open_clip): image embeddings for search, text embeddings for custom tags.

RAM's label embeddings live in the text space of OpenAI CLIP ViT-B/16, so one CLIP model
serves both: its image embeddings are searched with its text embeddings, and its text encoder
builds the label embeddings of custom tags.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import open_clip
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from ram_model.accel import compile_fixed, fetch_later
from ram_model.device import autocast
from ram_model.errors import ConfigError
from ram_model.preprocess import normalise

if TYPE_CHECKING:
    from ram_model.store import Bundle


@dataclass(frozen=True)
class EmbedderSpec:
    """An open_clip model name, the pretrained tag its weights come from, and its activation."""

    open_clip_name: str
    pretrained_tag: str | None
    quick_gelu: bool


_EMBEDDERS = {
    # OpenAI's weights were trained with QuickGELU; building ViT-B-16 without it would not match them.
    "clip_vit_b16": EmbedderSpec("ViT-B-16", "openai", quick_gelu=True),
    # A tiny CLIP with the same 512-d embedding space, for tests (config in data/clip/).
    "clip_tiny": EmbedderSpec("phototag-clip-tiny", None, quick_gelu=False),
}
DEFAULT_EMBEDDER_ARCH = "clip_vit_b16"
_registered = False
_lock = threading.Lock()


def list_embedders() -> list[str]:
    return sorted(_EMBEDDERS)


def _spec(arch: str) -> EmbedderSpec:
    try:
        return _EMBEDDERS[arch]
    except KeyError:
        raise ConfigError(f"unknown embedder {arch!r}; registered: {', '.join(list_embedders())}") from None


def _register_configs() -> None:
    global _registered
    with _lock:
        if not _registered:
            with resources.as_file(resources.files("ram_model").joinpath("data", "clip")) as folder:
                open_clip.add_model_config(Path(folder))
            _registered = True


class _Quiet(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


class ClipEmbedder(nn.Module):
    """An open_clip model (as ``self.model``) with its eval image transform and tokenizer.

    Embeddings are L2-normalised float32 on the CPU.
    """

    bundle: Bundle  # the stored model it runs, set by ``ModelStore.load_embedder``

    def __init__(self, arch: str) -> None:
        super().__init__()
        spec = _spec(arch)
        _register_configs()
        self.arch = arch
        # open_clip warns that no pretrained weights were loaded: we load our own right after.
        quiet = _Quiet("No pretrained weights loaded")
        logging.getLogger().addFilter(quiet)
        try:
            self.model = open_clip.create_model(
                spec.open_clip_name, pretrained=None, force_quick_gelu=spec.quick_gelu, load_weights=False,
                device=torch.get_default_device(),  # so that building on the meta device allocates nothing
            )
        finally:
            logging.getLogger().removeFilter(quiet)
        config = open_clip.get_model_preprocess_cfg(self.model)
        self.transform = open_clip.image_transform(
            config["size"], is_train=False, mean=config["mean"], std=config["std"],
            interpolation=config["interpolation"], resize_mode=config["resize_mode"],
        )
        if config["resize_mode"] != "shortest" or config["interpolation"] != "bicubic":
            raise ConfigError(f"{arch}: only shortest-side bicubic resizing is supported, not {config}")
        size = config["size"]
        self.image_size = int(size if isinstance(size, int) else size[0])
        self.mean, self.std = tuple(config["mean"]), tuple(config["std"])
        # The same resize and crop without ToTensor/Normalize: uint8 [3, S, S], normalised on the device.
        self.pixel_transform = transforms.Compose([*self.transform.transforms[:-2], transforms.PILToTensor()])
        self.tokenizer = open_clip.get_tokenizer(spec.open_clip_name)
        # Compute precision of image embeddings: fp32, or bf16/fp16 under autocast (the model store
        # sets it on GPUs: unit vectors within ~1e-2 of fp32's).
        self.dtype = torch.float32
        self._forward: Callable[[torch.Tensor], torch.Tensor] = self._encode  # or compiled (compile_batches)
        self._compiled_for: int | None = None

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1])

    @property
    def device(self) -> torch.device:
        return self.model.logit_scale.device

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.transform(image.convert("RGB"))

    def compile_batches(self, batch_size: int) -> None:
        """``torch.compile`` the image encoder at exactly ``batch_size`` images per call (padded/split);
        once per size, as ``Tagger.compile_batches``."""
        if self._compiled_for != batch_size:
            self._forward = compile_fixed(self._encode, batch_size)
            self._compiled_for = batch_size

    def _encode(self, batch: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        with autocast(self.device, dtype or self.dtype):
            return self.model.encode_image(batch)

    @torch.inference_mode()
    def embeddings_on_device(self, batch: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Unit vectors ``[B, embed_dim]`` (float32, on the model's device) for inputs from
        ``transform`` (float32) or ``pixel_transform`` (uint8, normalised here). ``dtype`` overrides
        the compute precision for this call (uncompiled)."""
        batch = batch.to(self.device, non_blocking=True)
        if batch.dtype == torch.uint8:
            batch = normalise(batch, self.mean, self.std)
        features = self._forward(batch) if dtype is None else self._encode(batch, dtype)
        return nn.functional.normalize(features.float(), dim=-1)

    def embeddings_later(self, batch: torch.Tensor) -> Callable[[], np.ndarray]:
        """Start embedding ``batch`` and return a function that waits for the unit vectors on the host
        (see ``Tagger.probs_later``: a photo that overflows fp16 is embedded again in bf16)."""
        again = None
        if self.dtype == torch.float16:
            def again(rows: torch.Tensor) -> torch.Tensor:
                return self.embeddings_on_device(batch.to(rows.device)[rows], torch.bfloat16)
        return fetch_later(self.embeddings_on_device(batch), again)

    def embed_image_tensors(self, batch: torch.Tensor) -> torch.Tensor:
        return self.embeddings_on_device(batch).cpu()

    def embed_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """``[B, embed_dim]`` unit vectors for decoded images (orientation already applied)."""
        if not images:
            return torch.empty(0, self.embed_dim)
        return self.embed_image_tensors(torch.stack([self.preprocess(image) for image in images]))

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """``[N, embed_dim]`` unit vectors in the same space as the image embeddings."""
        if not texts:
            return torch.empty(0, self.embed_dim)
        tokens = self.tokenizer(list(texts)).to(self.device)
        return nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1).cpu()


def create_embedder(arch: str = DEFAULT_EMBEDDER_ARCH) -> ClipEmbedder:
    """A CLIP embedder with random weights; load real ones with ``load_weights`` or the model store."""
    return ClipEmbedder(arch)


def pretrained_source(arch: str) -> dict[str, str]:
    """Where open_clip itself fetches this embedder's weights: Hugging Face repo and file."""
    spec = _spec(arch)
    if spec.pretrained_tag is None:
        raise ConfigError(f"{arch} has no published weights (it is a test architecture)")
    config = open_clip.get_pretrained_cfg(spec.open_clip_name, spec.pretrained_tag)
    repo_id, filename = config["hf_hub"].rstrip("/"), ""
    if "/" in repo_id and repo_id.count("/") > 1:
        repo_id, filename = repo_id.rsplit("/", 1)
    return {"repo_id": repo_id, "filename": filename or "open_clip_model.safetensors"}


def load_pretrained_file(arch: str, path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict for :class:`ClipEmbedder` from an open_clip checkpoint (.safetensors, .bin, .pt).

    Uses open_clip's own loader, so OpenAI's original layout is converted as open_clip does it.
    """
    from ram_model.errors import CheckpointError

    embedder = create_embedder(arch)
    try:
        open_clip.load_checkpoint(embedder.model, str(path), strict=True, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - open_clip raises anything from a foreign or broken file
        raise CheckpointError(
            f"cannot load {path} as {arch}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
    return {k: v.contiguous() for k, v in embedder.state_dict().items()}
