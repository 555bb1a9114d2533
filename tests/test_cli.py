"""End to end through the real `phototag` command line, with a model store in a temporary home."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from main import main
from tests.conftest import GOLDEN, PHOTOS, REPO


@pytest.fixture()
def home(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.setenv("PHOTOTAG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PHOTOTAG_DEVICE", "cpu")
    return tmp_path / "home"


def run(capsys, *args: str) -> tuple[int, str, str]:  # noqa: ANN001
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_random_bundle_is_marked_everywhere(home, capsys) -> None:  # noqa: ANN001
    code, _, err = run(capsys, "models", "random", "ram_plus_tiny", "--as", "tiny", "--seed", "3")
    assert code == 0 and "RANDOM weights (seed 3)" in err
    code, out, _ = run(capsys, "models", "list")
    assert code == 0 and "tiny" in out and "RANDOM WEIGHTS" in out
    code, out, _ = run(capsys, "models", "list", "--json")
    [bundle] = json.loads(out)
    assert bundle["random"] is True and bundle["source"] == {"type": "random", "seed": 3,
                                                             "weights_sha256": bundle["source"]["weights_sha256"]}
    photo = PHOTOS / "library" / "food" / "coffee.png"
    code, out, err = run(capsys, "tag-photo", str(photo), "--tagger", "tiny")
    assert code == 0 and "RANDOM weights" in err and out.startswith(f"{photo}: ")


def test_same_seed_gives_the_same_weights(home, capsys) -> None:  # noqa: ANN001
    run(capsys, "models", "random", "ram_plus_tiny", "--as", "a", "--seed", "7")
    run(capsys, "models", "random", "ram_plus_tiny", "--as", "b", "--seed", "7")
    run(capsys, "models", "random", "ram_plus_tiny", "--as", "c", "--seed", "8")
    from safetensors.torch import load_file

    _, out, _ = run(capsys, "models", "list", "--json")
    weights = {b["name"]: load_file(f"{b['path']}/weights.safetensors") for b in json.loads(out)}
    assert all(torch.equal(weights["a"][k], weights["b"][k]) for k in weights["a"])
    assert not torch.equal(weights["a"]["label_embed"], weights["c"]["label_embed"])


def test_imported_golden_model_tags_like_the_reference(home, capsys, golden, golden_model) -> None:  # noqa: ANN001
    from ram_model.preprocess import open_image
    from ram_model.tagger import Tagger
    from ram_model.vocab import builtin_vocabulary

    code, _, err = run(capsys, "models", "import", str(GOLDEN), "--as", "golden")
    assert code == 0 and "as golden (tagger, ram_plus_tiny)" in err
    photos = [PHOTOS / "library" / "animals" / "chelsea.png", PHOTOS / "library" / "space" / "rocket.jpg"]
    # fp32: on a CPU with native bf16 the default precision would be bf16 (see ram_model.device).
    code, out, _ = run(capsys, "--precision", "fp32", "tag-photo", *map(str, photos), "--tagger", "golden", "--json")
    assert code == 0
    records = json.loads(out)
    expected = Tagger(golden_model, builtin_vocabulary().head(40), device="cpu", dtype="fp32").tag(
        [open_image(p, draft_size=384) for p in photos])
    assert [r["path"] for r in records] == [str(p) for p in photos]
    for record, result in zip(records, expected, strict=True):
        assert [t["tag"] for t in record["tags"]] == [hit.tag for hit in result.tags]
        assert [t["score"] for t in record["tags"]] == pytest.approx([hit.score for hit in result.tags], abs=1e-4)


def test_bad_files_are_reported_and_the_rest_tagged(home, capsys) -> None:  # noqa: ANN001
    run(capsys, "models", "random", "ram_plus_tiny", "--as", "tiny")
    good = PHOTOS / "library" / "flowers" / "dahlia.jpg"
    empty, junk = PHOTOS / "edge" / "zero_bytes.jpg", PHOTOS / "edge" / "not_an_image.jpg"
    code, out, err = run(capsys, "tag-photo", str(empty), str(good), str(junk), "--tagger", "tiny", "--json")
    assert code == 1
    records = {r["path"]: r for r in json.loads(out)}
    assert "tags" in records[str(good)]
    assert "zero_bytes.jpg" in records[str(empty)]["error"] and "empty" in records[str(empty)]["error"]
    assert "not_an_image.jpg" in records[str(junk)]["error"]
    assert err.count("skipped:") == 2


def test_chinese_output(home, capsys) -> None:  # noqa: ANN001
    run(capsys, "models", "import", str(GOLDEN), "--as", "golden")
    photo = PHOTOS / "library" / "travel" / "china.jpg"
    _, out_en, _ = run(capsys, "tag-photo", str(photo), "--tagger", "golden")
    _, out_zh, _ = run(capsys, "tag-photo", str(photo), "--tagger", "golden", "--lang", "zh")
    assert out_en != out_zh
    assert any("\u4e00" <= ch <= "\u9fff" for ch in out_zh)


def test_download_without_network_says_how_to_import(home, capsys, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run(capsys, "models", "download", "ram_plus_swin_l_384")
    assert code == 2
    assert "ram_plus_swin_large_14m.pth" in err
    assert "497c178836ba66698ca226c7895317e6e800034be986452dbd2593298d50e87d" in err
    assert "phototag models import ram_plus_swin_large_14m.pth --as ram_plus_swin_l_384" in err


def test_missing_default_model_without_network(home, capsys, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run(capsys, "tag-photo", str(PHOTOS / "library" / "food" / "coffee.png"))
    assert code == 2 and "phototag models import" in err and "could not download" in err


def test_import_refuses_a_mismatched_file(home, capsys, tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "ram_tiny.pth"
    from ram_model import create_tagger

    torch.save({"model": create_tagger("ram_tiny").state_dict()}, path)
    code, _, err = run(capsys, "models", "import", str(path), "--as", "x", "--arch", "ram_plus_tiny")
    assert code == 2 and "does not fit the RAM++ model" in err and "looks like a RAM checkpoint" in err
    code, _, err = run(capsys, "models", "import", str(path), "--as", "x")  # recognised without --arch
    assert code == 0 and "(tagger, ram_tiny)" in err
    code, _, err = run(capsys, "models", "import", str(path), "--as", "x")
    assert code == 2 and "already exists" in err
    code, _, err = run(capsys, "tag-photo", "photo.jpg", "--tagger", "nope")
    assert code == 2 and "no model named 'nope'" in err and "phototag models download nope" in err


def test_import_with_config_json_and_tag_file(home, capsys, tmp_path) -> None:  # noqa: ANN001
    from ram_model import create_tagger

    config = {"swin": {"image_res": 384, "window_size": 12, "embed_dim": 32, "depths": [2, 2, 2, 2],
                       "num_heads": [1, 2, 4, 8], "vision_width": 256},
              "head": {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
                       "num_hidden_layers": 1, "layer_norm_eps": 1e-12},
              "num_class": 3, "descriptions_per_class": 2}
    (tmp_path / "config.json").write_text(json.dumps({"config": config}))
    (tmp_path / "tags.txt").write_text("sunset\t0.1\t日落\nboat\t0.99\nmountain\n", encoding="utf-8")
    torch.save(create_tagger(config).state_dict(), tmp_path / "mine.pt")
    code, _, err = run(capsys, "models", "import", str(tmp_path / "mine.pt"), "--as", "mine",
                       "--arch", str(tmp_path / "config.json"), "--tags", str(tmp_path / "tags.txt"))
    assert code == 0, err
    code, out, _ = run(capsys, "tag-photo", str(PHOTOS / "library" / "food" / "coffee.png"), "--tagger", "mine",
                       "--json")
    tags = {t["tag"]: t for t in json.loads(out)[0]["tags"]}
    assert set(tags) <= {"sunset", "boat", "mountain"}
    assert all(t["threshold"] in (0.1, 0.99, 0.68) for t in tags.values())
    assert tags["sunset"]["tag_zh"] == "日落" if "sunset" in tags else True


def test_help_runs_as_a_real_process() -> None:
    done = subprocess.run([sys.executable, str(REPO / "main.py"), "models", "import", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--arch" in done.stdout and "offline" in done.stdout


def test_a_bad_setting_in_the_environment_is_a_message_not_a_traceback(home, capsys, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("PHOTOTAG_METADATA_MODE", "bogus")
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert "PHOTOTAG_METADATA_MODE='bogus'" in err and "'sidecar', 'embed' or 'both'" in err
    assert "Traceback" not in err
