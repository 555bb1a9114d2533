"""Custom (open-set) tags: label embeddings built with the CLIP text encoder, scored by RAM's own head.

Two ways to build them, as the reference does:
- RAM style: every prompt template filled with the tag, encoded, normalised, averaged,
  normalised again: one row per tag.
- RAM++ style: D descriptions per tag, each encoded and normalised, not averaged; the model
  weighs them per image. Every tag must have the same D.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ram_model.errors import ConfigError

if TYPE_CHECKING:
    from ram_model.clip import ClipEmbedder
    from ram_model.ram import RamTagger

OPENSET_THRESHOLD = 0.5  # the reference's flat threshold for custom tags

# Our own wording, in the style of CLIP's zero-shot prompts.
RAM_TEMPLATES = (
    "a photo of a {}.",
    "a picture of a {}.",
    "a close-up photo of the {}.",
    "a blurry photo of a {}.",
    "a bright photo of the {}.",
    "a dark photo of a {}.",
    "a cropped photo of the {}.",
    "a good photo of a {}.",
    "a photo of the small {}.",
    "a photo of the large {}.",
    "there is a {} in the scene.",
    "a {} in a photo taken with a phone.",
)


@dataclass
class OpenSetTags:
    """Custom tags: names, label embeddings ``[K, D, dim]`` (unit rows) and thresholds ``[K]``."""

    names: list[str]
    embeddings: torch.Tensor
    thresholds: torch.Tensor
    style: str = "ram_plus"

    def __post_init__(self) -> None:
        if len(set(self.names)) != len(self.names):
            raise ConfigError("custom tag names must be unique")
        if self.embeddings.ndim != 3 or self.embeddings.shape[0] != len(self.names):
            raise ConfigError(f"embeddings must be [{len(self.names)}, D, dim], not {tuple(self.embeddings.shape)}")
        if self.thresholds.shape != (len(self.names),):
            raise ConfigError(f"{len(self.names)} tags need {len(self.names)} thresholds")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def descriptions_per_tag(self) -> int:
        return int(self.embeddings.shape[1])

    def select(self, names: Sequence[str]) -> OpenSetTags:
        positions = [self.names.index(name) for name in names]
        return OpenSetTags(list(names), self.embeddings[positions], self.thresholds[positions], self.style)

    def label_embed_for(self, model: RamTagger) -> torch.Tensor:
        """The embeddings as the model takes them: RAM has one row per tag, so several are averaged."""
        if model.config.variant == "ram" and self.descriptions_per_tag > 1:
            return F.normalize(self.embeddings.mean(dim=1, keepdim=True), dim=-1)
        return self.embeddings

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "embeddings": self.embeddings.tolist(),
                "thresholds": self.thresholds.tolist(), "style": self.style}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OpenSetTags:
        return cls(list(data["names"]), torch.tensor(data["embeddings"], dtype=torch.float32),
                   torch.tensor(data["thresholds"], dtype=torch.float32), data.get("style", "ram_plus"))


def build_openset_tags(
    embedder: ClipEmbedder,
    tags: Sequence[str] | Mapping[str, Sequence[str]],
    style: str = "ram_plus",
    threshold: float | Mapping[str, float] = OPENSET_THRESHOLD,
    templates: Sequence[str] = RAM_TEMPLATES,
) -> OpenSetTags:
    """Label embeddings for custom tags, from names alone or names with descriptions.

    ``style="ram"``: every template filled with the name, plus any descriptions, averaged (D = 1).
    ``style="ram_plus"``: a name alone gets the filled templates as its D descriptions; tags given
    with descriptions use those, and every tag must end up with the same number.
    """
    if style not in ("ram", "ram_plus"):
        raise ConfigError(f"style must be 'ram' or 'ram_plus', not {style!r}")
    given = dict(tags) if isinstance(tags, Mapping) else {name: [] for name in tags}
    if not isinstance(tags, Mapping) and len(given) != len(tags):
        raise ConfigError("custom tag names must be unique")
    texts = {name: [template.format(name) for template in templates] if not descriptions or style == "ram"
             else [] for name, descriptions in given.items()}
    for name, descriptions in given.items():
        texts[name] += list(descriptions)
    counts = {name: len(rows) for name, rows in texts.items()}
    if style == "ram_plus" and len(set(counts.values())) > 1:
        raise ConfigError(
            "RAM++-style custom tags need the same number of descriptions per tag; got "
            + ", ".join(f"{name}: {count}" for name, count in counts.items())
        )
    rows = []
    for name in given:
        encoded = embedder.embed_texts(texts[name])  # [n, dim], unit rows
        rows.append(F.normalize(encoded.mean(dim=0, keepdim=True), dim=-1) if style == "ram" else encoded)
    thresholds = [threshold.get(name, OPENSET_THRESHOLD) if isinstance(threshold, Mapping) else threshold
                  for name in given]
    return OpenSetTags(list(given), torch.stack(rows), torch.tensor(thresholds, dtype=torch.float32), style)
