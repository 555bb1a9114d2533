"""The model store: bundles are written atomically, listed, loaded, and CLIP bundles work like taggers."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from ram_model.errors import ConfigError, ModelNotFoundError
from ram_model.store import BUNDLE_FILE, ModelStore
from tests.conftest import GOLDEN, REPO


def test_clip_bundle_round_trip(tmp_path) -> None:  # noqa: ANN001
    store = ModelStore(tmp_path)
    bundle = store.create_random("clip_tiny", "clip", seed=5)
    assert bundle.kind == "embedder" and bundle.random and bundle.version == "clip@seed5"
    embedder = store.load_embedder("clip")
    torch.manual_seed(5)
    from ram_model.clip import create_embedder

    expected = create_embedder("clip_tiny")
    torch.testing.assert_close(embedder.embed_texts(["a red boat"]), expected.eval().embed_texts(["a red boat"]))
    with pytest.raises(ConfigError, match="holds embedder weights, not tagger weights"):
        store.load_tagger("clip")
    # Reduced precision for image embeddings only on a GPU: a CPU catalog's embeddings stay fp32.
    assert store.load_embedder("clip", "cpu", "bf16").dtype == torch.float32

    # An open_clip checkpoint imports as a bundle of the same weights.
    path = tmp_path / "open_clip_model.bin"
    torch.save(expected.model.state_dict(), path)
    store.import_file(path, "clip2", arch="clip_tiny")
    torch.testing.assert_close(store.load_embedder("clip2").embed_texts(["x"]), expected.embed_texts(["x"]))


def test_tagger_bundle_is_memory_mapped_and_exact(tmp_path, golden) -> None:  # noqa: ANN001
    store = ModelStore(tmp_path)
    bundle = store.import_file(GOLDEN, "golden")
    assert bundle.arch == "ram_plus_tiny" and not bundle.random
    data = json.loads((tmp_path / "golden" / BUNDLE_FILE).read_text())
    assert data["source"]["type"] == "import" and len(data["source"]["sha256"]) == 64
    model, vocabulary, _ = store.load_tagger_model("golden")
    assert len(vocabulary) == 40
    with torch.inference_mode():
        assert (model(golden["input"]) - golden["logits"]).abs().max() < 1e-4


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    store = ModelStore(tmp_path)

    def broken(*args, **kwargs) -> None:  # noqa: ANN002, ANN003
        raise OSError("disk full")

    monkeypatch.setattr("ram_model.store.save_safetensors", broken)
    with pytest.raises(OSError, match="disk full"):
        store.create_random("ram_plus_tiny", "tiny")
    assert list(tmp_path.iterdir()) == []
    assert store.list() == []


def test_unknown_and_invalid_names(tmp_path) -> None:  # noqa: ANN001
    store = ModelStore(tmp_path)
    with pytest.raises(ModelNotFoundError, match="phototag models download x"):
        store.get("x")
    with pytest.raises(ConfigError, match="invalid model name"):
        store.create_random("ram_plus_tiny", "../escape")


def test_bf16_tagger_holds_matrix_weights_in_bf16_with_unchanged_results(tmp_path, golden) -> None:  # noqa: ANN001
    from ram_model.tagger import Tagger

    store = ModelStore(tmp_path)
    store.import_file(GOLDEN, "golden")
    bf16 = store.load_tagger("golden", device="cpu", dtype="bf16")
    parameters = dict(bf16.model.named_parameters())
    for name in ("label_embed", "visual_encoder.patch_embed.proj.weight",
                 "visual_encoder.layers.0.blocks.0.attn.qkv.bias",
                 "tagging_head.encoder.layer.1.intermediate.dense.weight", "fc.weight"):
        assert parameters[name].dtype == torch.bfloat16, name
    # What autocast computes in fp32 stays fp32: LayerNorms, the position bias table, the reweighting scale.
    for name in ("visual_encoder.norm.weight", "visual_encoder.layers.0.blocks.0.attn.relative_position_bias_table",
                 "reweight_scale"):
        assert parameters[name].dtype == torch.float32, name

    model, vocabulary, _ = store.load_tagger_model("golden")  # fp32, memory-mapped
    autocast = Tagger(model, vocabulary, device="cpu", dtype="bf16")
    np.testing.assert_array_equal(bf16.predict(golden["input"]), autocast.predict(golden["input"]))
    with pytest.raises(ConfigError, match="reduced-precision weights"):
        Tagger(bf16.model, vocabulary, device="cpu", dtype="fp32")


def test_tagging_imports_neither_clip_nor_timm_nor_the_compiler(tmp_path) -> None:  # noqa: ANN001
    # Each would add tens to hundreds of MB of resident memory to every tagging process.
    ModelStore(tmp_path).create_random("ram_plus_tiny", "tiny")
    code = (
        "import sys, torch\n"
        "from ram_model.store import ModelStore\n"
        f"store = ModelStore({str(tmp_path)!r})\n"
        "for dtype in ('fp32', 'bf16'):\n"
        "    store.load_tagger('tiny', device='cpu', dtype=dtype).predict(torch.zeros(1, 3, 384, 384))\n"
        "heavy = ('open_clip', 'timm', 'torchvision', 'sympy', 'torch._dynamo')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
