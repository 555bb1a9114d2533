"""Registered tagger architectures: full-size RAM++/RAM and tiny ones for tests, built by the same code."""

from __future__ import annotations

from typing import Any

from ram_model.config import HeadConfig, RamConfig, SwinConfig
from ram_model.errors import ConfigError

_SWIN_L_384 = SwinConfig(
    image_res=384, window_size=12, embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48),
    vision_width=1536,
)
_HEAD = HeadConfig(hidden_size=768, num_attention_heads=4, intermediate_size=3072, num_hidden_layers=2)

# The tiny backbone keeps image 384 and window 12, so shifted windows and masks behave as in Swin-L.
_SWIN_TINY = SwinConfig(
    image_res=384, window_size=12, embed_dim=32, depths=(2, 2, 4, 2), num_heads=(1, 2, 4, 8), vision_width=256,
)
_HEAD_TINY = HeadConfig(hidden_size=64, num_attention_heads=4, intermediate_size=128, num_hidden_layers=2)

_ARCHS: dict[str, RamConfig] = {
    "ram_plus_swin_l_384": RamConfig(swin=_SWIN_L_384, head=_HEAD, num_class=4585, descriptions_per_class=51),
    "ram_swin_l_384": RamConfig(
        swin=_SWIN_L_384, head=_HEAD, num_class=4585, descriptions_per_class=1, variant="ram"
    ),
    # Same shape as ../shared/golden/ram_plus_tiny.pt: 40 tags x 51 descriptions.
    "ram_plus_tiny": RamConfig(swin=_SWIN_TINY, head=_HEAD_TINY, num_class=40, descriptions_per_class=51),
    "ram_tiny": RamConfig(swin=_SWIN_TINY, head=_HEAD_TINY, num_class=40, descriptions_per_class=1, variant="ram"),
}

DEFAULT_TAGGER_ARCH = "ram_plus_swin_l_384"


def list_archs() -> list[str]:
    """Names of the registered tagger architectures."""
    return sorted(_ARCHS)


def resolve_config(arch: str | dict[str, Any] | RamConfig) -> RamConfig:
    """Turn a registered name, a config dict (golden-file layout) or a config into a RamConfig."""
    if isinstance(arch, RamConfig):
        return arch
    if isinstance(arch, dict):
        return RamConfig.from_dict(arch)
    try:
        return _ARCHS[arch]
    except KeyError:
        raise ConfigError(f"unknown tagger architecture {arch!r}; registered: {', '.join(list_archs())}") from None


def arch_name_of(config: RamConfig) -> str | None:
    """The registered name of a config, or None for an ad-hoc one."""
    for name, registered in _ARCHS.items():
        if registered == config:
            return name
    return None
