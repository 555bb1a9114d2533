"""Strict loading: official layouts load, and every wrong, truncated or mismatched file is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from ram_model import create_tagger, load_weights
from ram_model.checkpoint import convert_checkpoint, read_state_dict, sha256_file, verify_sha256
from ram_model.config import RamConfig
from ram_model.errors import CheckpointError, ChecksumError


def official_layout(state_dict: dict, path: Path) -> Path:
    """Save the way the official .pth files are: a pickle of {'model': state_dict, ...}."""
    torch.save({"model": state_dict, "epoch": 3, "optimizer": {"lr": torch.tensor(5e-6)}}, path)
    return path


def logits_of(model, golden) -> torch.Tensor:  # noqa: ANN001
    with torch.no_grad():
        return model.eval()(golden["input"])


def test_official_pth_layout_loads_and_reproduces_golden(golden, tmp_path) -> None:  # noqa: ANN001
    path = official_layout(golden["state_dict"], tmp_path / "ram_plus.pth")
    model = create_tagger(golden["config"])
    load_weights(model, path)
    assert (logits_of(model, golden) - golden["logits"]).abs().max() < 1e-4


def test_vision_multi_is_renamed(golden, tmp_path) -> None:  # noqa: ANN001
    renamed = {k.replace("tagging_head.", "vision_multi."): v for k, v in golden["state_dict"].items()}
    model = create_tagger(golden["config"])
    load_weights(model, official_layout(renamed, tmp_path / "old.pth"))
    assert (logits_of(model, golden) - golden["logits"]).abs().max() < 1e-4


def test_safetensors_conversion_keeps_only_inference_tensors(golden, tmp_path) -> None:  # noqa: ANN001
    source = official_layout(golden["state_dict"], tmp_path / "ram_plus.pth")
    dest = tmp_path / "ram_plus.safetensors"
    convert_checkpoint(source, dest, RamConfig.from_dict(golden["config"]), {"origin": "test"})
    tensors = load_file(dest)
    assert not any(k.endswith(("attn_mask", "relative_position_index")) for k in tensors)
    assert len(tensors) == len(golden["state_dict"]) - sum(
        k.endswith(("attn_mask", "relative_position_index")) for k in golden["state_dict"])
    model = create_tagger(golden["config"])
    load_weights(model, dest)
    assert (logits_of(model, golden) - golden["logits"]).abs().max() < 1e-4


def test_captioning_branch_of_ram_is_dropped_explicitly() -> None:
    model = create_tagger("ram_tiny")
    state_dict = dict(model.state_dict())
    state_dict["tag_encoder.embeddings.word_embeddings.weight"] = torch.zeros(8, 4)
    state_dict["text_decoder.cls.predictions.bias"] = torch.zeros(8)
    load_weights(create_tagger("ram_tiny"), state_dict)  # no error


def test_ram_checkpoint_given_as_ram_plus_names_both(tmp_path) -> None:  # noqa: ANN001
    ram = create_tagger("ram_tiny").state_dict()
    ram["tag_encoder.embeddings.word_embeddings.weight"] = torch.zeros(8, 4)
    with pytest.raises(CheckpointError) as info:
        load_weights(create_tagger("ram_plus_tiny"), official_layout(ram, tmp_path / "ram.pth"))
    message = str(info.value)
    assert "ram.pth does not fit the RAM++ model" in message
    assert "missing key(s): reweight_scale" in message
    assert "label_embed: file (40, 512), model (2040, 512)" in message
    assert "looks like a RAM (with its captioning branch) checkpoint" in message


def test_missing_and_unexpected_keys_are_named(golden) -> None:  # noqa: ANN001
    state_dict = dict(golden["state_dict"])
    del state_dict["fc.bias"]
    state_dict["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\): fc.bias; 1 unexpected key\(s\): extra.weight"):
        load_weights(create_tagger(golden["config"]), state_dict)


def test_full_size_config_rejects_tiny_file_without_allocating(golden) -> None:  # noqa: ANN001
    from ram_model.checkpoint import build_meta, check_state_dict, clean_state_dict

    model = build_meta(lambda: create_tagger("ram_plus_swin_l_384"))
    with pytest.raises(CheckpointError, match="shape mismatch"):
        check_state_dict(model, clean_state_dict(golden["state_dict"]))


@pytest.mark.parametrize("keep", [0, 100, 0.5])
def test_truncated_or_empty_files_are_clear_errors(golden, tmp_path, keep) -> None:  # noqa: ANN001
    full = official_layout(golden["state_dict"], tmp_path / "full.pth").read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(full[: int(len(full) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(CheckpointError, match="cut.pth"):
        load_weights(create_tagger(golden["config"]), cut)


def test_truncated_safetensors_is_a_clear_error(golden, tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in golden["state_dict"].items()}, path)
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match="not a complete safetensors file"):
        read_state_dict(path)


def test_not_a_checkpoint(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "notes.pth"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="truncated or not a PyTorch checkpoint"):
        read_state_dict(path)


def test_pickled_code_is_refused(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "evil.pth"
    torch.save({"model": {"x": torch.zeros(1)}, "hook": Path("/tmp")}, path)
    with pytest.raises(CheckpointError):
        read_state_dict(path)


def test_sha256_mismatch(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "w.bin"
    path.write_bytes(b"phototag")
    good = sha256_file(path)
    verify_sha256(path, good)
    with pytest.raises(ChecksumError, match=f"has sha256 {good}, but 0000 was expected"):
        verify_sha256(path, "0000")
