"""Architecture configs for RAM++ and RAM: small typed objects built from dicts or JSON.

The field names are those of ``config`` in the golden reference file, so a config can be
written by hand, read from a ``config.json``, or taken from a checkpoint bundle unchanged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from ram_model.errors import ConfigError

Variant = Literal["ram_plus", "ram"]


@dataclass(frozen=True)
class SwinConfig:
    """Swin v1 backbone (patch 4, MLP ratio 4, qkv bias, no absolute position embedding)."""

    image_res: int = 384
    window_size: int = 12
    embed_dim: int = 192
    depths: tuple[int, ...] = (2, 2, 18, 2)
    num_heads: tuple[int, ...] = (6, 12, 24, 48)
    vision_width: int = 1536

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "num_heads", tuple(int(h) for h in self.num_heads))
        if len(self.depths) != len(self.num_heads):
            raise ConfigError(f"swin: {len(self.depths)} depths but {len(self.num_heads)} num_heads")
        expected_width = self.embed_dim * 2 ** (len(self.depths) - 1)
        if self.vision_width != expected_width:
            raise ConfigError(
                f"swin: vision_width {self.vision_width} does not match embed_dim {self.embed_dim} "
                f"doubled over {len(self.depths)} stages ({expected_width})"
            )
        if self.image_res % (4 * 2 ** (len(self.depths) - 1)):
            raise ConfigError(f"swin: image_res {self.image_res} is not divisible by the total stride")


@dataclass(frozen=True)
class HeadConfig:
    """The tagging head: cross-attention + feed-forward layers (no self-attention among tags)."""

    hidden_size: int = 768
    num_attention_heads: int = 4
    intermediate_size: int = 3072
    num_hidden_layers: int = 2
    layer_norm_eps: float = 1e-12

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"head: hidden_size {self.hidden_size} is not divisible by "
                f"num_attention_heads {self.num_attention_heads}"
            )


@dataclass(frozen=True)
class RamConfig:
    """A whole tagger: backbone, head, number of classes and descriptions per class.

    ``variant`` is ``"ram_plus"`` (label queries reweighted per image over several
    descriptions per class) or ``"ram"`` (one fixed label embedding per class).
    """

    swin: SwinConfig = field(default_factory=SwinConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    num_class: int = 4585
    descriptions_per_class: int = 51
    variant: Variant = "ram_plus"
    label_dim: int = 512

    def __post_init__(self) -> None:
        if self.variant not in ("ram_plus", "ram"):
            raise ConfigError(f"variant must be 'ram_plus' or 'ram', not {self.variant!r}")
        if self.variant == "ram" and self.descriptions_per_class != 1:
            raise ConfigError("a RAM (not ++) config has exactly one label embedding per class")
        if self.num_class < 1 or self.descriptions_per_class < 1:
            raise ConfigError("num_class and descriptions_per_class must be positive")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RamConfig:
        """Build a config from the golden file's ``config`` layout.

        The ``swin`` and ``head`` sections may carry the reference's training-only fields
        (``ckpt``, dropout rates, BERT vocabulary size ...): those are ignored. An unknown
        top-level key is an error.
        """
        data = dict(data)
        try:
            swin = SwinConfig(**_known_fields(SwinConfig, data.pop("swin", {})))
            head = HeadConfig(**_known_fields(HeadConfig, data.pop("head", {})))
            if "variant" not in data and data.get("descriptions_per_class") == 1:
                data["variant"] = "ram"
            return cls(swin=swin, head=head, **data)
        except TypeError as exc:
            raise ConfigError(f"invalid tagger config: {exc}") from exc

    @classmethod
    def from_json(cls, path: str | Path) -> RamConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read tagger config {path}: {exc}") from exc
        return cls.from_dict(data.get("config", data))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["swin"]["depths"] = list(self.swin.depths)
        data["swin"]["num_heads"] = list(self.swin.num_heads)
        return data


def _known_fields(kind: type, section: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(kind)}
    return {key: value for key, value in section.items() if key in names}
