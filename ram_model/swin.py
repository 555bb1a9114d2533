"""Swin v1 image backbone, assembled from timm's Swin blocks under the official RAM module names.

timm's ``SwinTransformer`` puts each patch-merging step at the start of the next stage; the
RAM checkpoints (like Microsoft's original code) put it at the end of the stage it reduces
(``layers.N.downsample``). Building the stages here from timm's own blocks keeps timm's
tested window attention, shifting and masking while the parameter names match the official
files exactly, so no key needs renaming. The ``relative_position_index`` and ``attn_mask``
buffers are recomputed by timm and are not part of our state dict.
"""

from __future__ import annotations

import torch
from timm.layers import PatchEmbed
from timm.models.swin_transformer import PatchMerging, SwinTransformerBlock
from torch import nn

from ram_model.config import SwinConfig

PATCH_SIZE = 4
MLP_RATIO = 4.0


class SwinStage(nn.Module):
    """``depth`` Swin blocks (alternating plain and shifted windows), then optional patch merging."""

    def __init__(
        self, dim: int, resolution: int, depth: int, num_heads: int, window_size: int, downsample: bool
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(
                dim=dim,
                input_resolution=(resolution, resolution),
                num_heads=num_heads,
                window_size=window_size,
                shift_size=0 if index % 2 == 0 else window_size // 2,
                mlp_ratio=MLP_RATIO,
                qkv_bias=True,
            )
            for index in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        if self.downsample is not None:
            x = self.downsample(x)
        return x


class SwinBackbone(nn.Module):
    """Image ``[B, 3, R, R]`` → tokens ``[B, 1 + (R/32)², vision_width]``.

    The tokens are the final LayerNorm's output with their mean prepended, as RAM uses them.
    """

    def __init__(self, config: SwinConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(
            img_size=config.image_res,
            patch_size=PATCH_SIZE,
            in_chans=3,
            embed_dim=config.embed_dim,
            norm_layer=nn.LayerNorm,
            output_fmt="NHWC",
        )
        resolution = config.image_res // PATCH_SIZE
        dim = config.embed_dim
        stages = []
        for index, (depth, heads) in enumerate(zip(config.depths, config.num_heads, strict=True)):
            last = index == len(config.depths) - 1
            stages.append(SwinStage(dim, resolution, depth, heads, config.window_size, downsample=not last))
            if not last:
                dim, resolution = dim * 2, resolution // 2
        self.layers = nn.ModuleList(stages)
        self.norm = nn.LayerNorm(config.vision_width)

    def set_fused_attention(self, enabled: bool) -> None:
        """Use ``scaled_dot_product_attention`` inside the windows (faster on GPUs)."""
        for module in self.modules():
            if hasattr(module, "fused_attn"):
                module.fused_attn = enabled

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(images)
        for stage in self.layers:
            x = stage(x)
        x = self.norm(x.flatten(1, 2))
        return torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)
