"""How far reduced-size JPEG decoding (``Image.draft``) moves the tagger's scores, and what it saves.

    .venv/bin/python bench/bench_draft.py

For every JPEG/MPO test photo whose reduced decode still covers 384x384, plus 12 MP JPEGs made
from the test photos (upscaled to 4000x3000, quality 92, as a camera would write them): decode
time full vs draft, the mean absolute difference of the preprocessed tensors, and the largest
change of any tag probability and the tag-set F1 between the two, for the full-size random
RAM++ bundle of bench_tagger.py and for the golden tiny RAM++ (the reference's random weights).
Random weights are all we have here: with trained weights the numbers will differ, the tensor
differences will not. Results go to bench/results/draft_decode.md.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_tagger import BUNDLE, CACHE, ensure_bundle  # noqa: E402

from ram_model import create_tagger, load_weights  # noqa: E402
from ram_model.preprocess import open_image, preprocess  # noqa: E402
from ram_model.store import ModelStore  # noqa: E402
from ram_model.tagger import Tagger  # noqa: E402
from ram_model.vocab import builtin_vocabulary  # noqa: E402

SHARED = HERE.parent.parent / "shared"
SIZE = 384


def timed_open(path: Path, draft: int | None) -> tuple[Image.Image, float]:
    start = time.perf_counter()
    image = open_image(path, draft_size=draft)
    return image, time.perf_counter() - start


def photos(workdir: Path) -> list[Path]:
    library = SHARED / "photos" / "library"
    chosen = []
    for path in sorted(library.rglob("*")):
        if path.suffix.lower() in (".jpg", ".jpeg", ".mpo"):
            full, _ = timed_open(path, None)
            draft, _ = timed_open(path, SIZE)
            if draft.size != full.size:
                chosen.append(path)
    for name in ("travel/china.jpg", "people/grace_hopper.jpg", "animals/chelsea.png"):
        big = workdir / f"12mp_{Path(name).stem}.jpg"
        Image.open(library / name).convert("RGB").resize((4000, 3000), Image.Resampling.LANCZOS).save(
            big, quality=92)
        chosen.append(big)
    return chosen


def f1(a: np.ndarray, b: np.ndarray) -> float:
    denominator = a.sum() + b.sum()
    return 1.0 if denominator == 0 else float(2 * np.logical_and(a, b).sum() / denominator)


def main() -> None:
    ensure_bundle()
    golden = torch.load(SHARED / "golden" / "ram_plus_tiny.pt", weights_only=True)
    tiny = create_tagger(golden["config"])
    load_weights(tiny, golden["state_dict"])
    taggers = {
        "RAM++ Swin-L random": ModelStore(CACHE).load_tagger(BUNDLE, device="cpu", dtype="fp32"),
        "golden tiny RAM++": Tagger(tiny, builtin_vocabulary().head(40), device="cpu", dtype="fp32"),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in photos(Path(tmp)):
            full, full_s = timed_open(path, None)
            draft, draft_s = timed_open(path, SIZE)
            x_full, x_draft = preprocess(full, SIZE), preprocess(draft, SIZE)
            row = {"photo": path.name, "full": f"{full.width}x{full.height}", "draft": f"{draft.width}x{draft.height}",
                   "full_ms": full_s * 1000, "draft_ms": draft_s * 1000,
                   "tensor_mad": float((x_full - x_draft).abs().mean())}
            for name, tagger in taggers.items():
                probs = tagger.predict(torch.stack([x_full, x_draft]))
                fired = probs > tagger.thresholds
                row[name] = (float(np.abs(probs[0] - probs[1]).max()), f1(fired[0], fired[1]), int(fired[0].sum()))
            rows.append(row)
            print(row, file=sys.stderr)
    names = list(taggers)
    lines = [
        "# Reduced-size JPEG decode (`Image.draft`) vs full decode",
        "",
        "Command: `.venv/bin/python bench/bench_draft.py` on this repository's CI-size machine (2 cores). "
        "Decode times are one cold decode each (orientation and RGB conversion included). "
        "'tensor MAD' is the mean absolute difference of the normalised 384x384 input tensors. "
        "For each model: the largest change of any tag probability, the F1 of the two tag sets, "
        "and the number of tags that fired on the full decode.",
        "",
        "| photo | full | draft | decode full (ms) | decode draft (ms) | tensor MAD | "
        + " | ".join(f"{n}: max Δprob / F1 / tags" for n in names) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(names),
    ]
    for row in rows:
        cells = " | ".join(f"{row[n][0]:.4f} / {row[n][1]:.3f} / {row[n][2]}" for n in names)
        lines.append(f"| {row['photo']} | {row['full']} | {row['draft']} | {row['full_ms']:.0f} | "
                     f"{row['draft_ms']:.0f} | {row['tensor_mad']:.4f} | {cells} |")
    out = HERE / "results" / "draft_decode.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(out.read_text())


if __name__ == "__main__":
    main()
