"""The model store: named bundles of converted weights under ``PHOTOTAG_HOME/models``.

A bundle is a folder holding ``bundle.json`` (kind, architecture, where the weights came from,
whether they are random), ``weights.safetensors`` (only what inference needs), and for a tagger
with its own vocabulary, ``tags.tsv``. Bundles are written into a temporary folder and renamed
into place, so a crash never leaves a half-written bundle behind.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ram_model._registry import arch_name_of, list_archs, resolve_config
from ram_model.checkpoint import (
    build_meta,
    check_state_dict,
    clean_state_dict,
    describe_state_dict,
    load_weights,
    read_state_dict,
    save_safetensors,
    sha256_file,
)
from ram_model.config import RamConfig
from ram_model.errors import CheckpointError, ConfigError, ModelNotFoundError
from ram_model.ram import RamTagger
from ram_model.vocab import Vocabulary, builtin_vocabulary

if TYPE_CHECKING:  # imported where used: loading a model need not import both
    from ram_model.clip import ClipEmbedder
    from ram_model.tagger import Tagger

BUNDLE_FILE = "bundle.json"
WEIGHTS_FILE = "weights.safetensors"
VOCAB_FILE = "tags.tsv"
FORMAT_VERSION = 1
# A bundle's name: the one rule every command checks (a folder directly in the store, never a path).
# One path component and nothing else: no separator, space, control character or backslash, and not "." or
# ".." (a name starts with a letter, digit or "_"); dots inside, as in "ram-v1.2", are fine.
NAME_RULE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


@dataclass
class Bundle:
    """What ``bundle.json`` records about one stored model."""

    name: str
    kind: str  # "tagger" or "embedder"
    arch: str | None
    config: dict[str, Any] | None = None
    random: bool = False
    source: dict[str, Any] = field(default_factory=dict)
    vocabulary: str = "builtin"  # "builtin", or VOCAB_FILE for a bundle with its own tag list
    created: str = ""
    format_version: int = FORMAT_VERSION
    path: Path | None = field(default=None, compare=False)

    @property
    def weights(self) -> Path:
        assert self.path is not None
        return self.path / WEIGHTS_FILE

    @property
    def version(self) -> str:
        """Identifies these exact weights (recorded with every tag and embedding they produce)."""
        digest = self.source.get("sha256") or self.source.get("weights_sha256", "")
        seed = f"seed{self.source['seed']}" if self.random else digest[:12]
        return f"{self.name}@{seed}"

    def label(self) -> str:
        marker = "  [RANDOM WEIGHTS: for tests and benchmarks, tags are meaningless]" if self.random else ""
        return f"{self.name:24} {self.kind:9} {self.arch or 'custom':22} {self.source.get('type', '?'):8}{marker}"

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("path")
        return json.dumps(data, indent=2, ensure_ascii=False)


def random_tagger(arch: str | RamConfig) -> RamTagger:
    """A tagger with random weights from torch's current generator; label embeddings are random unit
    rows (the module's own init leaves them zero, which would make every tag alike)."""
    model = RamTagger(resolve_config(arch))
    with torch.no_grad():
        rows = torch.randn_like(model.label_embed)
        model.label_embed.copy_(rows / rows.norm(dim=-1, keepdim=True))
    return model


class LazyModel:
    """A tagger or embedder that loads on first use. ``bundle`` (its bundle.json) is there at once: enough for an
    index pass that finds no model work (it needs the versions only), which then never spends the seconds a
    load takes. Any other attribute loads the model and is the model's."""

    def __init__(self, bundle: Bundle, load: Callable[[], Any]) -> None:
        self.bundle = bundle
        self._load = load
        self._model: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # not the model's: copy, pickle and the like probe for these
            raise AttributeError(name)
        if self._model is None:
            self._model = self._load()
        return getattr(self._model, name)


class ModelStore:
    """Bundles of tagger and embedder weights in one folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # --- reading -------------------------------------------------------------------------------
    def list(self) -> list[Bundle]:
        if not self.root.is_dir():
            return []
        return [self.get(p.name) for p in sorted(self.root.iterdir())
                if NAME_RULE.fullmatch(p.name) and (p / BUNDLE_FILE).is_file()]

    def exists(self, name: str) -> bool:
        return bool(NAME_RULE.fullmatch(name)) and (self.root / name / BUNDLE_FILE).is_file()

    def get(self, name: str) -> Bundle:
        path = self._path(name)
        try:
            data = json.loads((path / BUNDLE_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelNotFoundError(
                f"no model named {name!r} in {self.root}. Get it with 'phototag models download {name}' "
                f"or 'phototag models import FILE --as {name}'; 'phototag models list' shows what is there"
            ) from None
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"{path / BUNDLE_FILE} is unreadable ({exc}); remove the folder and import again"
            ) from exc
        return Bundle(**data, path=path)

    def load_tagger_model(
        self, name: str, dtype: torch.dtype = torch.float32
    ) -> tuple[RamTagger, Vocabulary, Bundle]:
        """The tagger module (nothing initialised twice) and its vocabulary.

        In fp32 the weights stay memory-mapped. For a reduced compute ``dtype`` (bf16, fp16) the
        weights of the matrix products are read and held in that precision, as autocast would
        cast them anyway: half the memory, no full-precision copy resident, the same results.
        """
        bundle = self._get_kind(name, "tagger")
        config = RamConfig.from_dict(bundle.config or {})
        model = build_meta(lambda: RamTagger(config))
        dtypes = None if dtype == torch.float32 else dict.fromkeys(model.matmul_only_parameters(), dtype)
        load_weights(model, bundle.weights, assign=True, dtypes=dtypes)
        return model.eval(), self._vocabulary(bundle, config), bundle

    def load_tagger(self, name: str, **options: Any) -> Tagger:
        """A ready :class:`ram_model.tagger.Tagger`; ``options`` go to its constructor."""
        from ram_model.device import resolve_device, resolve_dtype
        from ram_model.tagger import Tagger

        options["device"] = resolve_device(options.get("device", "auto"))
        options["dtype"] = resolve_dtype(options.get("dtype", "auto"), options["device"])
        model, vocabulary, bundle = self.load_tagger_model(name, options["dtype"])
        tagger = Tagger(model, vocabulary, **options)
        tagger.bundle = bundle
        return tagger

    def load_embedder(self, name: str, device: str | torch.device = "cpu", dtype: str | torch.dtype = "auto"
                      ) -> ClipEmbedder:
        """A ready :class:`ram_model.clip.ClipEmbedder` on ``device``. On a CUDA GPU it embeds under
        autocast in ``dtype`` (``auto``: the tagger's choice there, fp16); elsewhere in fp32,
        so that a CPU catalog's embeddings do not depend on the CPU's bf16 support."""
        from ram_model.clip import create_embedder
        from ram_model.device import resolve_device, resolve_dtype

        bundle = self._get_kind(name, "embedder")
        if bundle.arch is None:
            raise CheckpointError(f"model {name!r} names no architecture in its {BUNDLE_FILE}; import it again")
        embedder = create_embedder(bundle.arch)
        load_weights(embedder, bundle.weights)
        embedder.bundle = bundle
        device = resolve_device(device)
        if device.type == "cuda":
            embedder.dtype = resolve_dtype(dtype, device)
        return embedder.eval().to(device)

    # --- writing -------------------------------------------------------------------------------
    def import_file(
        self,
        file: str | Path,
        name: str,
        arch: str | None = None,
        tags_file: str | Path | None = None,
        source: dict[str, Any] | None = None,
    ) -> Bundle:
        """Convert a checkpoint (official .pth, bare state dict or safetensors) into a bundle.

        ``arch`` is a registered tagger or embedder name, or a JSON config file for a tagger;
        without it the architecture is recognised from the file's keys and shapes.
        """
        file = Path(file)
        self._check_free(name)
        source = dict(source or {"type": "import", "file": file.name})
        if "sha256" not in source:
            source["sha256"] = sha256_file(file)
        raw = read_state_dict(file)
        if arch is not None and arch in _embedder_archs():
            from ram_model.clip import create_embedder, load_pretrained_file

            state_dict = load_pretrained_file(arch, file)
            check_state_dict(build_meta(lambda: create_embedder(arch)), state_dict, str(file))
            bundle = Bundle(name=name, kind="embedder", arch=arch, source=source)
            return self._write(bundle, state_dict)
        arch_name, config = self._resolve_tagger_arch(arch, raw, file)
        state_dict = clean_state_dict(raw)
        check_state_dict(build_meta(lambda: RamTagger(config)), state_dict, str(file), raw)
        vocabulary = Vocabulary.from_file(tags_file) if tags_file else None
        self._check_vocabulary(vocabulary, config)
        bundle = Bundle(name=name, kind="tagger", arch=arch_name, config=config.to_dict(), source=source,
                        vocabulary=VOCAB_FILE if vocabulary else "builtin")
        return self._write(bundle, state_dict, vocabulary)

    def create_random(self, arch: str, name: str, seed: int = 0, tags_file: str | Path | None = None) -> Bundle:
        """A bundle with seeded random weights, for tests and benchmarks (marked random everywhere)."""
        self._check_free(name)
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            source = {"type": "random", "seed": seed}
            if arch in _embedder_archs():
                from ram_model.clip import create_embedder

                embedder = create_embedder(arch)
                bundle = Bundle(name=name, kind="embedder", arch=arch, random=True, source=source)
                return self._write(bundle, embedder.state_dict())
            model = random_tagger(arch)
            config = model.config
            vocabulary = Vocabulary.from_file(tags_file) if tags_file else None
            self._check_vocabulary(vocabulary, config)
            bundle = Bundle(name=name, kind="tagger", arch=arch_name_of(config), config=config.to_dict(),
                            random=True, source=source, vocabulary=VOCAB_FILE if vocabulary else "builtin")
            return self._write(bundle, model.state_dict(), vocabulary)
        finally:
            torch.random.set_rng_state(generator_state)

    def download(self, name: str, keep_original: bool = False) -> Bundle:
        """Download published weights (resumable, verified) and convert them into a bundle."""
        from ram_model.pretrained import download, get_source

        source = get_source(name)
        self._check_free(name)
        downloads = self.root / ".downloads"
        path = download(source, downloads)
        info = {"type": "download", "repo_id": source.repo_id, "file": source.filename,
                "sha256": source.sha256 or sha256_file(path)}
        bundle = self.import_file(path, name, arch=source.arch, source=info)
        if not keep_original:
            path.unlink(missing_ok=True)
        return bundle

    def remove(self, name: str) -> None:
        """Delete bundle ``name``: a folder directly in the store, never anything a link leads to."""
        path = self._path(name)
        try:
            info = path.lstat()
        except FileNotFoundError:
            info = None
        if info is not None and stat.S_ISLNK(info.st_mode):
            raise ConfigError(f"{path} is a symbolic link: Phototag does not delete through links; remove the link "
                              "yourself if it should go")
        bundle = self.get(name)
        assert bundle.path is not None
        shutil.rmtree(bundle.path)

    # --- internals -----------------------------------------------------------------------------
    def _get_kind(self, name: str, kind: str) -> Bundle:
        bundle = self.get(name)
        if bundle.kind != kind:
            raise ConfigError(f"model {name!r} holds {bundle.kind} weights, not {kind} weights")
        return bundle

    def _path(self, name: str) -> Path:
        """The folder of bundle ``name``, directly in the store.

        Raises:
            ConfigError: ``name`` is not a bundle name (:data:`NAME_RULE`).
        """
        if not isinstance(name, str) or not NAME_RULE.fullmatch(name):
            raise ConfigError(f"invalid model name {name!r}: use letters, digits, '.', '-' and '_' (up to 100, "
                              "starting with a letter, digit or '_')")
        return self.root / name

    def _check_free(self, name: str) -> None:
        self._path(name)
        if self.exists(name):
            raise ConfigError(f"a model named {name!r} already exists in {self.root}: remove it first or pick a name")

    @staticmethod
    def _check_vocabulary(vocabulary: Vocabulary | None, config: RamConfig) -> None:
        if vocabulary is not None and len(vocabulary) != config.num_class:
            raise ConfigError(f"the tag file has {len(vocabulary)} tags but the model scores {config.num_class}")
        if vocabulary is None and config.num_class > len(builtin_vocabulary()):
            raise ConfigError(f"the model scores {config.num_class} tags: give their names with --tags FILE")

    def _vocabulary(self, bundle: Bundle, config: RamConfig) -> Vocabulary:
        if bundle.vocabulary == VOCAB_FILE:
            assert bundle.path is not None
            return Vocabulary.from_file(bundle.path / VOCAB_FILE)
        return builtin_vocabulary().head(config.num_class)

    def _resolve_tagger_arch(
        self, arch: str | None, state_dict: dict[str, torch.Tensor], file: Path
    ) -> tuple[str | None, RamConfig]:
        """A tagger's registered architecture name (None for an ad-hoc config file) and its config."""
        if arch is not None and arch.endswith(".json"):
            config = RamConfig.from_json(arch)
            return arch_name_of(config), config
        if arch is not None:
            config = resolve_config(arch)
            return arch, config
        cleaned = clean_state_dict(state_dict)
        for candidate in list_archs():
            config = resolve_config(candidate)
            expected = build_meta(partial(RamTagger, config)).state_dict()
            if expected.keys() == cleaned.keys() and all(
                expected[k].shape == cleaned[k].shape for k in expected
            ):
                return candidate, config
        raise ConfigError(
            f"cannot tell which architecture {file} is: it looks like {describe_state_dict(state_dict)}. "
            f"Name it with --arch (one of {', '.join(list_archs() + sorted(_embedder_archs()))}, "
            "or a config.json)"
        )

    def _write(
        self, bundle: Bundle, state_dict: dict[str, torch.Tensor], vocabulary: Vocabulary | None = None
    ) -> Bundle:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{bundle.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            bundle.created = datetime.now(UTC).isoformat(timespec="seconds")
            metadata = {"phototag_bundle": bundle.name, "kind": bundle.kind, "random": str(bundle.random)}
            save_safetensors(state_dict, tmp / WEIGHTS_FILE, metadata)
            bundle.source.setdefault("weights_sha256", sha256_file(tmp / WEIGHTS_FILE))
            if vocabulary is not None:
                vocabulary.to_file(tmp / VOCAB_FILE)
            (tmp / BUNDLE_FILE).write_text(bundle.to_json(), encoding="utf-8")
            tmp.rename(self.root / bundle.name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        bundle.path = self.root / bundle.name
        return bundle


def _embedder_archs() -> set[str]:
    from ram_model.clip import list_embedders

    return set(list_embedders())
