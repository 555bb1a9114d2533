"""The high-level tagger: decoded photos in, tags that fire (with scores and thresholds) out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from ram_model.accel import compile_fixed, fetch_later
from ram_model.device import autocast, resolve_device, resolve_dtype
from ram_model.errors import ConfigError
from ram_model.preprocess import normalise, preprocess_batch
from ram_model.ram import RamTagger
from ram_model.vocab import Vocabulary

if TYPE_CHECKING:
    from ram_model.openset import OpenSetTags
    from ram_model.store import Bundle



@dataclass(frozen=True)
class TagHit:
    """One tag that fired on one image: ``score > threshold``."""

    tag: str
    tag_zh: str
    score: float
    threshold: float
    index: int
    custom: bool = False

    def name(self, lang: str = "en") -> str:
        return self.tag_zh if lang == "zh" else self.tag


@dataclass
class TagResult:
    """The tags of one image in class order (built-in tags, then custom ones), and optionally
    every probability in the tagger's ``tag_names`` order."""

    tags: list[TagHit]
    probs: np.ndarray | None = field(default=None, repr=False)


class Tagger:
    """Tags batches of PIL images with a RAM++/RAM model.

    ``tags`` trims scoring to a subset of the built-in vocabulary (English or Chinese names);
    ``openset`` adds custom tags scored by the same head in the same pass; ``chunk_size`` tags are
    scored at a time (:data:`ram_model.ram.DEFAULT_TAG_CHUNK` unless given), which bounds memory.
    Precision: fp32, or bf16/fp16 under autocast (``ModelStore.load_tagger`` then also holds the
    matrix weights in that precision); a photo that overflows fp16 is scored again in bf16.
    """

    bundle: Bundle  # the stored model it runs, set by ``ModelStore.load_tagger``

    def __init__(
        self,
        model: RamTagger,
        vocabulary: Vocabulary,
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        chunk_size: int | None = None,
        tags: Sequence[str] | None = None,
        openset: OpenSetTags | None = None,
    ) -> None:
        if len(vocabulary) != model.num_class:
            raise ValueError(f"vocabulary has {len(vocabulary)} tags but the model scores {model.num_class}")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        if self.dtype == torch.float32 and any(p.dtype != torch.float32 for p in model.parameters()):
            raise ConfigError("this model holds reduced-precision weights: tag with its precision, or load it in fp32")
        self.model = model.eval().to(self.device)
        self.vocabulary = vocabulary
        self.chunk_size = chunk_size
        self.openset = openset
        indices = vocabulary.indices(tags) if tags is not None else list(range(len(vocabulary)))
        self._indices = indices
        thresholds = [vocabulary.thresholds[i] for i in indices]
        builtin = self.model.class_label_embed()
        self._label_sets = [builtin if tags is None else builtin[torch.tensor(indices, device=self.device)]]
        if openset is not None:
            self._label_sets.append(openset.label_embed_for(self.model).to(self.device))
            thresholds += [float(t) for t in openset.thresholds]
        self._thresholds = np.asarray(thresholds, dtype=np.float32)
        self._forward: Callable[[torch.Tensor], torch.Tensor] = self._probs  # or compiled (compile_batches)
        self._compiled_for: int | None = None

    @property
    def image_size(self) -> int:
        return self.model.config.swin.image_res

    @property
    def tag_names(self) -> list[str]:
        """Names of the scored tags, in the order of ``TagResult.probs``."""
        custom = list(self.openset.names) if self.openset is not None else []
        return [self.vocabulary.names[i] for i in self._indices] + custom

    @property
    def thresholds(self) -> np.ndarray:
        return self._thresholds

    def compile_batches(self, batch_size: int) -> None:
        """Run the model through ``torch.compile`` from now on, at exactly ``batch_size`` images per
        call (smaller batches are padded, larger ones split): worth its minute of compiling on a
        long run on a GPU, not for a few photos. Asked again for the same size (the app's next pass),
        it keeps what it compiled."""
        if self._compiled_for != batch_size:
            self._forward = compile_fixed(self._probs, batch_size)
            self._compiled_for = batch_size

    def _probs(self, images: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        with autocast(self.device, dtype or self.dtype):
            # Built-in and custom tags go through the same head in the same pass.
            logits = self.model.score_chunked(self.model.encode_image(images), self._label_sets, self.chunk_size)
        return torch.sigmoid(logits.float())

    @torch.inference_mode()
    def probs_on_device(self, images: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Probabilities ``[B, T]`` on the model's device, for images ``[B, 3, H, W]``: float32
        preprocessed, or uint8 pixels (``preprocess.resized_pixels``) normalised here. ``dtype``
        overrides the compute precision for this call (uncompiled)."""
        images = images.to(self.device, non_blocking=True)
        if images.dtype == torch.uint8:
            images = normalise(images)
        return self._forward(images) if dtype is None else self._probs(images, dtype)

    def probs_later(self, images: torch.Tensor) -> Callable[[], np.ndarray]:
        """Start the model on ``images`` (as ``probs_on_device`` takes them) and return a function that
        waits for the probabilities ``[B, T]`` on the host: from a GPU they are copied without blocking
        this thread, so the caller can start the next batch first.

        fp16 rounds 8× finer than bf16 at the same speed, but its range ends at 65,504: a photo whose
        activations exceed it comes out NaN, and is scored again in bf16 (fp32's range)."""
        again = None
        if self.dtype == torch.float16:
            def again(rows: torch.Tensor) -> torch.Tensor:
                return self.probs_on_device(images.to(rows.device)[rows], torch.bfloat16)
        return fetch_later(self.probs_on_device(images), again)

    def predict(self, images: torch.Tensor) -> np.ndarray:
        """Probabilities ``[B, T]`` for preprocessed images ``[B, 3, H, W]`` (float32, or uint8 pixels)."""
        return self.probs_later(images)()

    def tag(
        self, images: Sequence[Image.Image], *, batch_size: int = 8, return_probs: bool = False
    ) -> list[TagResult]:
        """Tag decoded images (EXIF orientation already applied, see ``preprocess.open_image``)."""
        results: list[TagResult] = []
        for start in range(0, len(images), batch_size):
            probs = self.predict(preprocess_batch(images[start : start + batch_size], self.image_size))
            results.extend(self.results_from_probs(probs, return_probs))
        return results

    def results_from_probs(self, probs: np.ndarray, return_probs: bool = False) -> list[TagResult]:
        """Turn probabilities into tags: a tag fires where ``prob > threshold`` (strictly)."""
        names = self.tag_names
        builtin = len(self._indices)
        results = []
        for row in probs:
            hits = []
            for position in np.flatnonzero(row > self._thresholds):
                if position < builtin:
                    index = self._indices[position]
                    name, name_zh, custom = self.vocabulary.names[index], self.vocabulary.names_zh[index], False
                else:
                    index = int(position) - builtin
                    name = name_zh = names[position]
                    custom = True
                hits.append(TagHit(name, name_zh, float(row[position]), float(self._thresholds[position]),
                                   int(index), custom))
            results.append(TagResult(hits, row.copy() if return_probs else None))
        return results
