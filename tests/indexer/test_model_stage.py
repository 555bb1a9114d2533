"""The model stage with JPEGs left to the device's decoder (here the CPU's, through the same code) and
CPU-decoded photos in one batch: results for every photo, refused files decoded again or failed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from indexer.pipeline import Decoded, DecodeJob, DecodeSettings, Failure, ModelStage, decode
from tests.indexer.conftest import EMBEDDER, TAGGER


def _stage(model_dir: Path, device_jpeg: bool) -> ModelStage:
    from ram_model.store import ModelStore

    store = ModelStore(model_dir)
    tagger = store.load_tagger(TAGGER, device="cpu", dtype="fp32")
    embedder = store.load_embedder(EMBEDDER)
    settings = DecodeSettings(tagger.image_size, embedder.pixel_transform, draft=False, pixels=True,
                              device_jpeg=device_jpeg)
    return ModelStage(tagger, embedder, settings, tagger.device)


def test_device_and_cpu_decoding_give_the_same_tags(model_dir: Path, photos: Path, monkeypatch) -> None:  # noqa: ANN001
    from ram_model import accel

    decoded_on_device: list[int] = []
    real = accel.decode_on_device

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        out = real(*args, **kwargs)
        decoded_on_device.append(sum(inputs is not None for inputs in out))
        return out

    monkeypatch.setattr(accel, "decode_on_device", spy)
    files = sorted(p for p in (photos / "library").rglob("*") if p.is_file())
    files += [photos / "edge" / "truncated_jpeg.jpg", photos / "edge" / "pil_sample_cmyk.jpg"]
    results = {}
    for device_jpeg in (False, True):
        stage = _stage(model_dir, device_jpeg)
        jobs = [DecodeJob(i, str(p), True, True) for i, p in enumerate(files)]
        batch = [decode(job, stage.settings) for job in jobs]
        if device_jpeg:
            left = [d for d in batch if isinstance(d, Decoded) and d.device_jpeg is not None]
            assert len(left) >= 10  # the orientation set, flowers, people, space ...
        [(out_batch, outputs)] = list(stage.run([batch]))
        reasons = {Path(r.path).name: r.reason for r in out_batch if isinstance(r, Failure)}
        reasons |= {files[i].name: f.reason for i, f in outputs.failures.items()}
        results[device_jpeg] = (outputs, reasons)
    (cpu, cpu_failed), (device, device_failed) = results[False], results[True]
    assert decoded_on_device and decoded_on_device[0] >= 10  # not all refused and decoded on the CPU again
    assert set(device.probs) == set(cpu.probs) and set(device.vectors) == set(cpu.vectors)
    # The truncated JPEG passes the header check; the device decoder refuses it, the CPU decoder names why.
    assert cpu_failed == device_failed == {"truncated_jpeg.jpg": "truncated"}
    for photo_id, probs in cpu.probs.items():
        np.testing.assert_allclose(device.probs[photo_id], probs, atol=0.02)
        assert float(device.vectors[photo_id] @ cpu.vectors[photo_id]) > 0.98


def test_photos_that_overflow_fp16_are_computed_again_in_bf16(model_dir: Path, photos: Path, caplog) -> None:  # noqa: ANN001
    """The stage takes both models' results through ``accel.fetch_later``: photos whose fp16 activations
    overflow (a patch embedding scaled past fp16's range here) are tagged and embedded again in bf16,
    not stored as NaN."""
    import logging

    import torch

    from ram_model.store import ModelStore

    store = ModelStore(model_dir)
    tagger = store.load_tagger(TAGGER, device="cpu", dtype="fp16")
    embedder = store.load_embedder(EMBEDDER)
    embedder.dtype = torch.float16  # as the model store sets it on a GPU
    with torch.no_grad():
        tagger.model.visual_encoder.patch_embed.proj.weight.mul_(3e5)  # still within fp16
        embedder.model.visual.conv1.weight.mul_(3e5)
    settings = DecodeSettings(tagger.image_size, embedder.pixel_transform, draft=False, pixels=True)
    stage = ModelStage(tagger, embedder, settings, tagger.device)
    files = sorted((photos / "library").rglob("*.jpg"))[:2]
    batch = [decode(DecodeJob(i, str(p), True, True), settings) for i, p in enumerate(files)]
    pixels = torch.stack([d.tagger_input for d in batch])
    crops = torch.stack([d.embedder_input for d in batch])
    # fp16 alone overflows on these photos, in both models.
    assert np.isnan(tagger.probs_on_device(pixels).numpy()).all()
    assert np.isnan(embedder.embeddings_on_device(crops).numpy()).all()
    with caplog.at_level(logging.WARNING, logger="ram_model.accel"):
        [(_batch, outputs)] = list(stage.run([batch]))
    assert caplog.text.count("fp16 overflowed on 2 of 2 photos") == 2
    expected = tagger.probs_on_device(pixels, torch.bfloat16).numpy()
    vectors = embedder.embeddings_on_device(crops, torch.bfloat16).numpy()
    assert set(outputs.probs) == set(outputs.vectors) == {0, 1}
    for photo_id in (0, 1):
        assert np.isfinite(outputs.probs[photo_id]).all() and np.isfinite(outputs.vectors[photo_id]).all()
        np.testing.assert_allclose(outputs.probs[photo_id], expected[photo_id], atol=1e-6)
        np.testing.assert_allclose(outputs.vectors[photo_id], vectors[photo_id], atol=1e-6)


class _GpuModel:
    """Stands in for a model on a CUDA device: the stage only reads these attributes here."""

    def __init__(self) -> None:
        import torch

        self.device = torch.device("cuda")
        self.image_size = 384
        self.pixel_transform = None
        self.bundle = type("Bundle", (), {"version": "v"})()
        self.compiled: list[int] = []

    def compile_batches(self, batch_size: int) -> None:
        self.compiled.append(batch_size)


def test_a_gpu_pass_compiles_its_models_only_when_it_pays() -> None:
    """Unset, ``compile`` is decided by the first pass's size: a minute of compiling pays from
    COMPILE_FROM_PHOTOS photos; told true or false, the indexer does as told."""
    from indexer.engine import LocalEngine
    from indexer.settings import COMPILE_FROM_PHOTOS

    for compile_, photos, expected in ((None, COMPILE_FROM_PHOTOS - 1, []), (None, COMPILE_FROM_PHOTOS, [16]),
                                       (True, 10, [16]), (False, 10**7, [])):
        tagger, embedder = _GpuModel(), _GpuModel()
        engine = LocalEngine(tagger, embedder, batch_size=16, compile=compile_)
        stage = engine._model_stage(photos)  # noqa: SLF001 - the decision under test
        assert tagger.compiled == embedder.compiled == expected, (compile_, photos)
        assert engine._model_stage(photos * 10) is stage  # noqa: SLF001 - built (and compiled) once
        assert tagger.compiled == expected
