"""Our Swin blocks compute exactly what timm's do, on tiled and on padded feature maps.

The golden test checks the whole tiny backbone against the reference; this also covers feature
maps that windows do not tile and windows as large as the map (no shift), which it does not.
"""

from __future__ import annotations

import pytest
import torch

from ram_model.swin import PatchMerging, SwinBlock

timm_swin = pytest.importorskip("timm.models.swin_transformer")


def randomised(module: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(0, 0.2)
    return module.eval()


@pytest.mark.parametrize(("resolution", "window", "shift"), [(24, 12, 6), (20, 12, 6), (14, 7, 3), (12, 12, 6)])
def test_block_equals_timm(resolution: int, window: int, shift: int) -> None:
    torch.manual_seed(0)
    ours = randomised(SwinBlock(32, resolution, num_heads=2, window=window, shift=shift))
    theirs = timm_swin.SwinTransformerBlock(
        dim=32, input_resolution=(resolution, resolution), num_heads=2, window_size=window, shift_size=shift,
    ).eval()
    theirs.load_state_dict(ours.state_dict())
    assert (ours.window_size, ours.shift_size) == (theirs.window_size, theirs.shift_size)
    torch.testing.assert_close(ours.attn.relative_position_index, theirs.attn.relative_position_index)
    if theirs.attn_mask is None:
        assert ours.attn_mask is None
    else:
        torch.testing.assert_close(ours.attn_mask, theirs.attn_mask)
    x = torch.randn(2, resolution, resolution, 32)
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


def test_patch_merging_equals_timm() -> None:
    torch.manual_seed(0)
    ours = randomised(PatchMerging(16))
    theirs = timm_swin.PatchMerging(16).eval()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 8, 8, 16)
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), theirs(x))
