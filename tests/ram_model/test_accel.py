"""The GPU path's pieces, run on the CPU: which JPEGs the device decodes, orientation and resizing of
device-decoded photos, uint8 inputs, fixed compiled batches, the batch-size rule and the overlap."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ram_model import accel
from ram_model.preprocess import IMAGENET_MEAN, IMAGENET_STD, normalise, open_image, preprocess, resized_pixels
from tests.conftest import PHOTOS

LIBRARY, EDGE = PHOTOS / "library", PHOTOS / "edge"
TAGGER_SPEC = accel.InputSpec(384, IMAGENET_MEAN, IMAGENET_STD, stretch=True)


def _save(tmp_path: Path, name: str, **options: object) -> Path:
    path = tmp_path / name
    image = Image.open(LIBRARY / "people" / "grace_hopper.jpg")
    image.convert(options.pop("mode", "RGB")).save(path, **options)
    return path


def test_device_decodes_only_plain_sequential_jpegs(tmp_path: Path) -> None:
    assert accel.device_decodable(_save(tmp_path, "baseline.jpg", quality=90)) == 1
    assert accel.device_decodable(_save(tmp_path, "grey.jpg", mode="L")) == 1
    assert accel.device_decodable(_save(tmp_path, "progressive.jpg", progressive=True)) is None
    assert accel.device_decodable(_save(tmp_path, "photo.png")) is None
    assert accel.device_decodable(EDGE / "pil_sample_cmyk.jpg") is None  # four components
    assert accel.device_decodable(LIBRARY / "travel" / "fujifilm.mpo") is None  # several frames
    assert accel.device_decodable(EDGE / "not_an_image.jpg") is None
    assert accel.device_decodable(EDGE / "zero_bytes.jpg") is None
    assert accel.device_decodable(tmp_path / "gone.jpg") is None
    for orientation in range(1, 9):
        assert accel.device_decodable(LIBRARY / "orientation" / f"hopper_orientation_{orientation}.jpg") == orientation


def test_frame_header_behind_large_app_segments(tmp_path: Path) -> None:
    path = _save(tmp_path, "big_exif.jpg", quality=90)
    data = path.read_bytes()
    # An APP2 segment of 60 KB three times over, as ICC profiles and maker notes make them.
    segment = b"\xff\xe2" + (60_002).to_bytes(2, "big") + bytes(60_000)
    path.write_bytes(data[:2] + segment * 3 + data[2:])
    assert accel.jpeg_frame(data)[0] == 0xC0
    assert accel.device_decodable(path) == 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_device_decoded_inputs_match_pillow(orientation: int) -> None:
    """Each EXIF orientation turns the photo as Pillow's exif_transpose does; pixels agree within a level
    or two after resizing (a wrong turn or flip would differ by tens of levels)."""
    path = LIBRARY / "orientation" / f"hopper_orientation_{orientation}.jpg"
    clip_spec = accel.InputSpec(224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), stretch=False)
    [inputs] = accel.decode_on_device([path.read_bytes()], [orientation], [TAGGER_SPEC, clip_spec], torch.device("cpu"))
    image = open_image(path)
    expected = resized_pixels(image, 384).int()
    assert inputs[0].shape == (3, 384, 384) and inputs[0].dtype == torch.uint8
    assert (inputs[0].int() - expected).abs().float().mean() < 1.0
    from torchvision import transforms

    crop = transforms.Compose([transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC),
                               transforms.CenterCrop(224), transforms.PILToTensor()])
    assert inputs[1].shape == (3, 224, 224)
    assert (inputs[1].int() - crop(image).int()).abs().float().mean() < 1.0


def test_device_decoder_refusal_gives_none(tmp_path: Path) -> None:
    good = (LIBRARY / "people" / "grace_hopper.jpg").read_bytes()
    out = accel.decode_on_device([good, b"\xff\xd8\xff\xdb garbage"], [1, 1], [TAGGER_SPEC], torch.device("cpu"))
    assert out[0] is not None and out[1] is None


def test_photos_of_one_size_are_resized_together_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same-size photos share each resize call (few kernels per batch on a GPU), chunked by pixels;
    every photo's inputs are what it gets alone, in the caller's order."""
    generator = torch.Generator().manual_seed(0)
    photos = [torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
              for shape in [(3, 900, 1200)] * 3 + [(3, 1200, 900), (3, 900, 1200), (3, 500, 700)]]
    clip_spec = accel.InputSpec(224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), stretch=False)
    specs = [TAGGER_SPEC, clip_spec]
    alone = [accel.model_inputs([p], specs)[0] for p in photos]
    calls = []
    real = accel.reduced
    monkeypatch.setattr(accel, "reduced", lambda x, s: calls.append(x.shape[0]) or real(x, s))
    monkeypatch.setattr(accel, "RESIZE_CHUNK_PIXELS", 3 * 900 * 1200)
    together = accel.model_inputs(photos, specs)
    assert sorted(calls) == [1, 1, 1, 3]  # four 900×1200 photos: a chunk of three, then one
    for got, want in zip(together, alone, strict=True):
        assert [t.shape for t in got] == [(3, 384, 384), (3, 224, 224)]
        assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))


def test_uint8_inputs_give_the_float_path_results(golden_model) -> None:  # noqa: ANN001
    from ram_model.tagger import Tagger
    from ram_model.vocab import builtin_vocabulary

    tagger = Tagger(golden_model, builtin_vocabulary().head(golden_model.num_class), device="cpu", dtype="fp32")
    images = [open_image(p) for p in sorted((LIBRARY / "flowers").glob("*.jpg"))]
    size = tagger.image_size
    floats = torch.stack([preprocess(i, size) for i in images])
    pixels = torch.stack([resized_pixels(i, size) for i in images])
    assert torch.equal(normalise(pixels), floats)
    np.testing.assert_array_equal(tagger.predict(pixels), tagger.predict(floats))


def test_fixed_batches_pad_and_split() -> None:
    calls: list[int] = []

    def double(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return x * 2

    inputs = torch.arange(10.0).view(10, 1)
    out = accel.fixed_batches(double, inputs, 4)
    assert calls == [4, 4, 4] and torch.equal(out, inputs * 2)


def test_batch_size_from_memory() -> None:
    gib = 2**30
    assert accel.pick_batch_size(per_image_bytes=0.5 * gib, fixed_bytes=2 * gib, free_bytes=80 * gib) == 64
    assert accel.pick_batch_size(per_image_bytes=0.5 * gib, fixed_bytes=2 * gib, free_bytes=80 * gib, limit=32) == 32
    assert accel.pick_batch_size(per_image_bytes=4 * gib, fixed_bytes=2 * gib, free_bytes=4 * gib) == 1


def test_device_share_splits_jpegs_between_decoders() -> None:
    from indexer.pipeline import _to_device

    assert accel.device_share(0) == accel.device_share(0, compiled=True) == 1.0
    share = accel.device_share(15)
    assert 0.3 < share < 0.9
    # At that share both sides finish together: the workers' photos at their rate, the GPU's
    # decoding and the models one after the other.
    cpu = 15 * accel.CPU_JPEG_RATE_PER_WORKER
    for compiled, models in ((False, accel.MODEL_RATE_EAGER), (True, accel.MODEL_RATE_COMPILED)):
        f = accel.device_share(15, compiled)
        assert cpu / (1 - f) == pytest.approx(1 / (1 / models + f / accel.GPU_JPEG_RATE))
    # Faster models leave more decoding to the GPU; more workers, less; enough workers, none.
    assert accel.device_share(15, compiled=True) > accel.device_share(15)
    assert accel.device_share(30) < accel.device_share(15) < accel.device_share(4)
    assert accel.device_share(100) == 0.0
    chosen = sum(_to_device(i, share) for i in range(1, 1001))
    assert abs(chosen / 1000 - share) < 0.02


def test_pipelined_keeps_order_and_starts_the_next_batch_before_a_result() -> None:
    """The GPU is kept busy: batch n+1's compute starts before batch n's result is asked for, and
    the thread prepares ahead; results come out in order."""
    events: list[str] = []
    lock = threading.Lock()

    def note(event: str) -> None:
        with lock:
            events.append(event)

    def prepare(item: int) -> int:
        note(f"p{item}")
        return item * 10

    def compute(value: int):  # noqa: ANN202
        note(f"c{value // 10}")

        def result() -> int:
            note(f"r{value // 10}")
            return value + 1

        return result

    out = list(accel.pipelined(range(4), prepare, compute))
    assert out == [(i, i * 10 + 1) for i in range(4)]
    calls = [e for e in events if e[0] in "cr"]  # this thread's calls, in order
    assert calls == ["c0", "c1", "r0", "c2", "r1", "c3", "r2", "r3"]
    for i in range(4):  # each batch was prepared before it was computed
        assert events.index(f"p{i}") < events.index(f"c{i}")


def test_pipelined_raises_a_prepare_error() -> None:
    def prepare(item: int) -> int:
        if item == 2:
            raise ValueError("bad batch")
        return item

    with pytest.raises(ValueError, match="bad batch"):
        list(accel.pipelined(range(5), prepare, lambda v: lambda: v))
