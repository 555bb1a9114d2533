"""Swin v1 image backbone under the official RAM module names.

The blocks are written here rather than imported from timm: importing timm also imports
torchvision, about 200 MB of resident memory that tagging never uses. The arithmetic is timm's
``SwinTransformerBlock`` (v1.0) operation for operation (the golden test checks it stage by
stage); the layout is the official one, where patch merging ends the stage it reduces
(``layers.N.downsample``), so no key needs renaming. The ``relative_position_index`` and
``attn_mask`` buffers are recomputed here and are not part of our state dict.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ram_model.config import SwinConfig

PATCH_SIZE = 4
MLP_RATIO = 4.0
# What the reference adds to attention logits between tokens from different regions of a shifted window.
SHIFTED_WINDOW_MASK = -100.0


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """``[B, H, W, C]`` → ``[B * nW, window², C]``, windows in row-major order, batch-major."""
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window, window, width // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, channels)


def window_reverse(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``[B * nW, window², C]`` → ``[B, H, W, C]``."""
    channels = windows.shape[-1]
    x = windows.view(-1, height // window, width // window, window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


# The buffer helpers below compute on the CPU even inside ``torch.device("meta")``: arithmetic on
# meta tensors imports torch._dynamo and sympy, about 150 MB, just to build a model for loading.
def relative_position_index(window: int) -> torch.Tensor:
    """``[window², window²]``: for each pair of tokens, its row in the relative-position bias table."""
    steps = torch.arange(window, device="cpu")
    coords = torch.stack(torch.meshgrid(steps, steps, indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return relative[..., 0] * (2 * window - 1) + relative[..., 1]


def shifted_window_mask(resolution: int, window: int, shift: int) -> torch.Tensor:
    """``[nW, window², window²]``: 0 between tokens of the same region of a shifted window, else -100."""
    regions = torch.zeros(1, resolution, resolution, 1, device="cpu")
    bounds = ((0, -window), (-window, -shift), (-shift, None))
    for label, ((top, bottom), (left, right)) in enumerate((h, w) for h in bounds for w in bounds):
        regions[:, top:bottom, left:right, :] = label
    labels = window_partition(regions, window).squeeze(-1)  # [nW, window²]
    differs = labels.unsqueeze(1) != labels.unsqueeze(2)
    return torch.zeros(differs.shape, device="cpu").masked_fill(differs, SHIFTED_WINDOW_MASK)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a learned relative-position bias.

    Bias and shift mask are added into one ``[1, nW * heads, N, N]`` tensor per call, shared by
    every image of the batch (``[B * nW, heads, N, d]`` views as ``[B, nW * heads, N, d]``), so
    nothing is expanded per image and nothing is cached between calls.
    """

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window_area = window * window
        self.relative_position_bias_table = nn.Parameter(torch.empty((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", None, persistent=False)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self._window = window
        self.init_non_persistent_buffers()

    def init_non_persistent_buffers(self) -> None:
        """(Re)compute the index buffer where the bias table is (after loading into a meta-built model)."""
        index = relative_position_index(self._window)
        self.relative_position_index = index.to(self.relative_position_bias_table.device)

    def attention_bias(self, mask: torch.Tensor | None) -> torch.Tensor:
        """``[1, nW * heads, N, N]``: relative-position bias plus the shift mask (``nW = 1`` without one)."""
        # Gathering from the transposed table gives [heads, N²] directly, with no permuted copy.
        table = self.relative_position_bias_table.t().contiguous()
        bias = table.index_select(1, self.relative_position_index.view(-1))
        bias = bias.view(1, self.num_heads, self.window_area, self.window_area)
        if mask is not None:
            bias = mask.unsqueeze(1).to(bias.dtype) + bias  # [nW, heads, N, N]
        return bias.reshape(1, -1, self.window_area, self.window_area)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        windows, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(windows, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        bias = self.attention_bias(mask)
        shape = (-1, bias.shape[1], tokens, channels // self.num_heads)
        out = F.scaled_dot_product_attention(
            q.reshape(shape), k.reshape(shape), v.reshape(shape), attn_mask=bias.to(q.dtype)
        )
        out = out.reshape(windows, self.num_heads, tokens, -1).transpose(1, 2).reshape(windows, tokens, -1)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock(nn.Module):
    """Pre-norm window attention (cyclically shifted when ``shift > 0``) and MLP, each with a residual.

    A window as large as the feature map is neither shifted nor masked (Swin's last stage).
    """

    def __init__(self, dim: int, resolution: int, num_heads: int, window: int, shift: int) -> None:
        super().__init__()
        window = min(window, resolution)
        self.resolution = resolution
        self.window_size = (window, window)
        self.shift_size = (shift, shift) if resolution > window else (0, 0)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * MLP_RATIO))
        self.register_buffer("attn_mask", None, persistent=False)
        self.init_non_persistent_buffers()

    def init_non_persistent_buffers(self) -> None:
        """(Re)compute the shift mask where the parameters are (after loading into a meta-built model)."""
        shift, window = self.shift_size[0], self.window_size[0]
        if shift:
            padded = -(-self.resolution // window) * window
            mask = shifted_window_mask(padded, window, shift)
            self.attn_mask = mask.to(self.norm1.weight.device, self.norm1.weight.dtype)

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        _, height, width, _ = x.shape
        shift, window = self.shift_size[0], self.window_size[0]
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        # A feature map that windows do not tile is padded with zeros at the bottom and right, as in the reference.
        pad_h, pad_w = -height % window, -width % window
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        windows = self.attn(window_partition(x, window), mask=self.attn_mask)
        x = window_reverse(windows, window, height + pad_h, width + pad_w)
        if pad_h or pad_w:
            x = x[:, :height, :width].contiguous()
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = x.shape
        x = x + self._attend(self.norm1(x))
        x = x.reshape(batch, -1, channels)
        x = x + self.mlp(self.norm2(x))
        return x.reshape(batch, height, width, channels)


class PatchMerging(nn.Module):
    """Each 2×2 neighbourhood ``[B, H, W, C]`` → one token ``[B, H/2, W/2, 2C]`` (LayerNorm, then linear)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = x.shape
        # Concatenated in the reference's order: (0,0), (1,0), (0,1), (1,1).
        x = x.reshape(batch, height // 2, 2, width // 2, 2, channels).permute(0, 1, 3, 4, 2, 5).flatten(3)
        return self.reduction(self.norm(x))


class PatchEmbed(nn.Module):
    """Image ``[B, 3, R, R]`` → patch tokens ``[B, R/4, R/4, C]`` (strided convolution, then LayerNorm)."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=PATCH_SIZE, stride=PATCH_SIZE)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(images).permute(0, 2, 3, 1))


class SwinStage(nn.Module):
    """``depth`` Swin blocks (alternating plain and shifted windows), then optional patch merging."""

    def __init__(
        self, dim: int, resolution: int, depth: int, num_heads: int, window_size: int, downsample: bool
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, resolution, num_heads, window_size, shift=0 if index % 2 == 0 else window_size // 2)
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
        self.patch_embed = PatchEmbed(config.embed_dim)
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

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        expected = self.config.image_res
        if images.shape[-2:] != (expected, expected):
            raise ValueError(f"the backbone takes {expected}×{expected} images, not {tuple(images.shape[-2:])}")
        x = self.patch_embed(images)
        for stage in self.layers:
            x = stage(x)
        x = self.norm(x.flatten(1, 2))
        return torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)
