"""Where official weights come from: Hugging Face repositories, file names, sizes and sha256.

A separate registry from the architectures (a weight source names the architecture it fits).
Downloads go through ``huggingface_hub`` (resumable, with a progress bar) and are verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ram_model.checkpoint import verify_sha256
from ram_model.errors import DownloadError, ModelNotFoundError


@dataclass(frozen=True)
class WeightSource:
    """One published checkpoint file."""

    name: str  # the bundle name it is stored under
    kind: str  # "tagger" or "embedder"
    arch: str
    repo_id: str
    filename: str
    size: int | None = None
    sha256: str | None = None
    license: str = ""

    def offline_hint(self) -> str:
        digest = f", sha256 {self.sha256}" if self.sha256 else ""
        return (
            f"On a machine with internet access, download {self.filename} from "
            f"https://huggingface.co/{self.repo_id}{digest}, copy it here and run: "
            f"phototag models import {self.filename} --as {self.name} --arch {self.arch}"
        )


_TAGGER_SOURCES = {
    source.name: source
    for source in (
        WeightSource(
            name="ram_plus_swin_l_384", kind="tagger", arch="ram_plus_swin_l_384",
            repo_id="xinyu1205/recognize-anything-plus-model", filename="ram_plus_swin_large_14m.pth",
            size=3_010_210_801, sha256="497c178836ba66698ca226c7895317e6e800034be986452dbd2593298d50e87d",
            license="Apache-2.0",
        ),
        WeightSource(
            name="ram_swin_l_384", kind="tagger", arch="ram_swin_l_384",
            repo_id="xinyu1205/recognize_anything_model", filename="ram_swin_large_14m.pth",
            size=5_625_634_877, sha256="15c729c793af28b9d107c69f85836a1356d76ea830d4714699fb62e55fcc08ed",
            license="Apache-2.0",
        ),
    )
}


def weight_sources() -> dict[str, WeightSource]:
    """Every downloadable bundle by name: the two taggers and the CLIP embedder."""
    from ram_model.clip import DEFAULT_EMBEDDER_ARCH, pretrained_source

    clip = pretrained_source(DEFAULT_EMBEDDER_ARCH)
    sources = dict(_TAGGER_SOURCES)
    sources[DEFAULT_EMBEDDER_ARCH] = WeightSource(
        name=DEFAULT_EMBEDDER_ARCH, kind="embedder", arch=DEFAULT_EMBEDDER_ARCH,
        repo_id=clip["repo_id"], filename=clip["filename"], license="MIT (OpenAI CLIP)",
    )
    return sources


def get_source(name: str) -> WeightSource:
    sources = weight_sources()
    if name not in sources:
        raise ModelNotFoundError(f"no published weights named {name!r}; downloadable: {', '.join(sorted(sources))}")
    return sources[name]


def download(source: WeightSource, dest_dir: Path) -> Path:
    """Fetch one file into ``dest_dir`` (resuming a partial download) and verify its sha256.

    A damaged file is deleted so the next attempt starts clean.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    dest_dir.mkdir(parents=True, exist_ok=True)
    try:
        path = Path(hf_hub_download(repo_id=source.repo_id, filename=source.filename, local_dir=dest_dir))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise DownloadError(
            f"could not download {source.filename} from Hugging Face ({source.repo_id}): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. {source.offline_hint()}"
        ) from exc
    if source.sha256:
        try:
            with tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=f"sha256 {path.name}") as bar:
                verify_sha256(path, source.sha256, progress=bar.update)
        except Exception:
            path.unlink(missing_ok=True)
            raise
    return path

