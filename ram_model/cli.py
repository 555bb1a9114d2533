"""``phototag models …`` and ``phototag tag-photo``, and loading the models every other command uses."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer.cli_common import EXIT_OK, EXIT_PARTIAL, add_command, json_option, print_json, say, settings_for

if TYPE_CHECKING:
    from indexer.settings import Settings
    from ram_model.store import LazyModel, ModelStore

NAME_HELP = "the bundle's name: letters, digits, '.', '-' and '_', starting with a letter, digit or '_'"


def add_commands(commands: Any) -> None:  # noqa: ANN401
    models = add_command(commands, "models", "list, download, import or create model bundles")
    actions = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    p = add_command(actions, "list", "the bundles in the model store (random ones are marked)", cmd_models_list)
    json_option(p, "machine-readable output")
    p = add_command(actions, "download",
                    "fetch official weights from Hugging Face (resumable, sha256-checked) and convert them",
                    cmd_models_download)
    p.add_argument("name", help="ram_plus_swin_l_384 (default tagger), ram_swin_l_384 or clip_vit_b16")
    p.add_argument("--keep-original", action="store_true", help="keep the downloaded .pth after conversion")
    p = add_command(actions, "import", "convert a checkpoint file you already have (offline) into a bundle",
                    cmd_models_import)
    p.add_argument("file", type=Path, help="an official .pth, a bare state dict or a .safetensors file")
    p.add_argument("--as", dest="name", required=True, help=NAME_HELP)
    p.add_argument("--arch", help="a registered architecture or a config.json (default: recognised from the file)")
    p.add_argument("--tags", type=Path, help="tag file for a custom vocabulary: name[<TAB>threshold[<TAB>chinese]]")
    p = add_command(actions, "random", "a bundle with seeded random weights, for tests and benchmarks",
                    cmd_models_random)
    p.add_argument("arch", help="a registered architecture (ram_plus_tiny, ram_plus_swin_l_384, clip_tiny, ...)")
    p.add_argument("--as", dest="name", required=True, help=NAME_HELP)
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--tags", type=Path, help="tag file for a custom vocabulary")
    p = add_command(actions, "remove", "delete a bundle from the store", cmd_models_remove)
    p.add_argument("name")

    p = add_command(commands, "tag-photo", "tag individual photo files and print their tags", cmd_tag_photo)
    p.add_argument("paths", nargs="+", metavar="PATH", help="photo files (JPEG, PNG, WebP, HEIC, MPO, TIFF, ...)")
    json_option(p, "print a JSON list: path, tags (tag, tag_zh, score, threshold)")
    p.add_argument("--lang", choices=("en", "zh"), default="en", help="tag names in English or Chinese")
    p.add_argument("--tagger", help="model bundle to tag with (default: ram_plus_swin_l_384)")
    p.add_argument("--batch-size", type=int, help="images per model call (default 8)")
    p.add_argument("--chunk-size", type=int, help="tags scored at a time, to bound memory (default: all)")
    p.add_argument("--tags", help="only score these comma-separated tags (English or Chinese names)")


# --- loading models (for every command that needs one) -------------------------------------------
def store_for(settings: Settings) -> ModelStore:
    from ram_model.store import ModelStore

    return ModelStore(settings.models_dir)


def store_with(settings: Settings, name: str) -> ModelStore:
    """The model store, with ``name`` downloaded first if it is a missing default model."""
    from ram_model.pretrained import weight_sources

    store = store_for(settings)
    if not store.exists(name) and settings.auto_download and name in weight_sources():
        say(f"model {name} is not in {store.root} yet: downloading it once")
        store.download(name)
    return store


def load_tagger(settings: Settings, name: str, tags: list[str] | None = None):  # noqa: ANN201
    tagger = store_with(settings, name).load_tagger(
        name, device=settings.device, dtype=settings.precision, chunk_size=settings.chunk_size,
        tags=tags,
    )
    if tagger.bundle.random:
        say(f"warning: {name} has RANDOM weights (seed {tagger.bundle.source.get('seed')}): its tags are meaningless")
    return tagger


def load_embedder(settings: Settings, name: str):  # noqa: ANN201
    embedder = store_with(settings, name).load_embedder(name, settings.device, settings.precision)
    if embedder.bundle.random:
        say(f"warning: {name} has RANDOM weights: its embeddings are meaningless")
    return embedder


def lazy_models(settings: Settings) -> tuple[LazyModel, LazyModel]:
    """The tagger and the embedder, loaded only if the pass finds model work: a pass over an unchanged library
    (a nightly run) then takes a second or two instead of the ~6 s two loads cost on a CPU."""
    from ram_model.store import LazyModel

    tagger, embedder = settings.tagger, settings.embedder
    return (LazyModel(store_with(settings, tagger).get(tagger), lambda: load_tagger(settings, tagger)),
            LazyModel(store_with(settings, embedder).get(embedder), lambda: load_embedder(settings, embedder)))


# --- phototag models ... --------------------------------------------------------------------------
def cmd_models_list(args: argparse.Namespace) -> int:
    store = store_for(settings_for(args))
    bundles = store.list()
    if args.json:
        print_json([json.loads(b.to_json()) | {"path": str(b.path)} for b in bundles], indent=2)
        return EXIT_OK
    if not bundles:
        say(f"no models in {store.root}. Try: phototag models download ram_plus_swin_l_384")
    for bundle in bundles:
        print(bundle.label())
    from ram_model.pretrained import weight_sources

    missing = [name for name in weight_sources() if not store.exists(name)]
    if missing and not args.json:
        say(f"downloadable: {', '.join(missing)} (phototag models download NAME)")
    return EXIT_OK


def cmd_models_download(args: argparse.Namespace) -> int:
    bundle = store_for(settings_for(args)).download(args.name, keep_original=args.keep_original)
    say(f"stored {bundle.name} in {bundle.path}")
    return EXIT_OK


def cmd_models_import(args: argparse.Namespace) -> int:
    bundle = store_for(settings_for(args)).import_file(args.file, args.name, arch=args.arch, tags_file=args.tags)
    say(f"imported {args.file} as {bundle.name} ({bundle.kind}, {bundle.arch or 'custom config'})")
    return EXIT_OK


def cmd_models_random(args: argparse.Namespace) -> int:
    bundle = store_for(settings_for(args)).create_random(args.arch, args.name, seed=args.seed, tags_file=args.tags)
    say(f"wrote {bundle.name}: {bundle.arch} with RANDOM weights (seed {args.seed}); for tests and benchmarks only")
    return EXIT_OK


def cmd_models_remove(args: argparse.Namespace) -> int:
    store_for(settings_for(args)).remove(args.name)
    say(f"removed {args.name}")
    return EXIT_OK


# --- phototag tag-photo ------------------------------------------------------------------------
def cmd_tag_photo(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from indexer.settings import CPU_BATCH_SIZE
    from ram_model.errors import ImageError
    from ram_model.preprocess import open_image, preprocess_batch

    settings = settings_for(args)
    step = settings.batch_size or CPU_BATCH_SIZE
    tagger = load_tagger(settings, settings.tagger, tags=args.tags.split(",") if args.tags else None)
    size = tagger.image_size
    draft = size if settings.draft_decode else None
    records: list[dict] = []
    failed = 0
    paths = [Path(p) for p in args.paths]
    with tqdm(total=len(paths), unit="photo", disable=None, file=sys.stderr) as bar:
        for start in range(0, len(paths), step):
            batch, inputs = [], []
            for path in paths[start : start + step]:
                try:
                    # Preprocessed at once: a batch holds 384x384 inputs, not full-size decoded photos.
                    inputs.append(preprocess_batch([open_image(path, draft_size=draft)], size))
                    batch.append(path)
                except ImageError as exc:
                    failed += 1
                    records.append({"path": str(path), "error": str(exc)})
                    say(f"skipped: {exc}")
            results = tagger.results_from_probs(tagger.predict(torch.cat(inputs))) if inputs else []
            for path, result in zip(batch, results, strict=True):
                records.append({"path": str(path), "tags": [
                    {"tag": hit.tag, "tag_zh": hit.tag_zh, "score": round(hit.score, 4),
                     "threshold": round(hit.threshold, 4)} for hit in result.tags]})
                if not args.json:
                    names = ", ".join(f"{hit.name(args.lang)} ({hit.score:.2f})" for hit in result.tags)
                    print(f"{path}: {names or '(no tag above its threshold)'}", flush=True)
            bar.update(len(paths[start : start + step]))
    if args.json:
        print_json(records, indent=2)
    return EXIT_PARTIAL if failed else EXIT_OK
