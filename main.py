"""The ``phototag`` command: a thin shell over the ram_model and indexer libraries.

Library code raises typed errors; this is the one place that turns them into a one-line message
and an exit code (0 success, 1 some input failed, 2 usage or fatal error, 130 interrupted).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


def _settings(args: argparse.Namespace):  # noqa: ANN202
    from indexer.settings import Settings

    return Settings().with_overrides(
        home=args.home, device=args.device, precision=args.precision,
        tagger=getattr(args, "tagger", None), batch_size=getattr(args, "batch_size", None),
        chunk_size=getattr(args, "chunk_size", None),
    )


def _store(settings):  # noqa: ANN001, ANN202
    from ram_model.store import ModelStore

    return ModelStore(settings.models_dir)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- phototag models ... --------------------------------------------------------------------------
def cmd_models_list(args: argparse.Namespace) -> int:
    store = _store(_settings(args))
    bundles = store.list()
    if args.json:
        print(json.dumps([json.loads(b.to_json()) | {"path": str(b.path)} for b in bundles], indent=2,
                         ensure_ascii=False))
        return EXIT_OK
    if not bundles:
        _say(f"no models in {store.root}. Try: phototag models download ram_plus_swin_l_384")
    for bundle in bundles:
        print(bundle.label())
    from ram_model.pretrained import weight_sources

    missing = [name for name in weight_sources() if not store.exists(name)]
    if missing and not args.json:
        _say(f"downloadable: {', '.join(missing)} (phototag models download NAME)")
    return EXIT_OK


def cmd_models_download(args: argparse.Namespace) -> int:
    bundle = _store(_settings(args)).download(args.name, keep_original=args.keep_original)
    _say(f"stored {bundle.name} in {bundle.path}")
    return EXIT_OK


def cmd_models_import(args: argparse.Namespace) -> int:
    bundle = _store(_settings(args)).import_file(args.file, args.name, arch=args.arch, tags_file=args.tags)
    _say(f"imported {args.file} as {bundle.name} ({bundle.kind}, {bundle.arch or 'custom config'})")
    return EXIT_OK


def cmd_models_random(args: argparse.Namespace) -> int:
    bundle = _store(_settings(args)).create_random(args.arch, args.name, seed=args.seed, tags_file=args.tags)
    _say(f"wrote {bundle.name}: {bundle.arch} with RANDOM weights (seed {args.seed}); for tests and benchmarks only")
    return EXIT_OK


def cmd_models_remove(args: argparse.Namespace) -> int:
    _store(_settings(args)).remove(args.name)
    _say(f"removed {args.name}")
    return EXIT_OK


# --- phototag tag-photo ------------------------------------------------------------------------
def _load_tagger(settings, name: str, tags: list[str] | None = None):  # noqa: ANN001, ANN202
    from ram_model.pretrained import weight_sources

    store = _store(settings)
    if not store.exists(name) and settings.auto_download and name in weight_sources():
        _say(f"model {name} is not in {store.root} yet: downloading it once")
        store.download(name)
    tagger = store.load_tagger(
        name, device=settings.device, dtype=settings.precision, chunk_size=settings.chunk_size,
        tags=tags,
    )
    if tagger.bundle.random:
        _say(f"warning: {name} has RANDOM weights (seed {tagger.bundle.source.get('seed')}): its tags are meaningless")
    return tagger


def cmd_tag_photo(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ram_model.errors import ImageError
    from ram_model.preprocess import open_image

    settings = _settings(args)
    tagger = _load_tagger(settings, settings.tagger, tags=args.tags.split(",") if args.tags else None)
    draft = tagger.image_size if settings.draft_decode else None
    records: list[dict] = []
    failed = 0
    paths = [Path(p) for p in args.paths]
    with tqdm(total=len(paths), unit="photo", disable=None, file=sys.stderr) as bar:
        for start in range(0, len(paths), settings.batch_size):
            batch, images = [], []
            for path in paths[start : start + settings.batch_size]:
                try:
                    images.append(open_image(path, draft_size=draft))
                    batch.append(path)
                except ImageError as exc:
                    failed += 1
                    records.append({"path": str(path), "error": str(exc)})
                    _say(f"skipped: {exc}")
            for path, result in zip(batch, tagger.tag(images, batch_size=settings.batch_size), strict=True):
                records.append({"path": str(path), "tags": [
                    {"tag": hit.tag, "tag_zh": hit.tag_zh, "score": round(hit.score, 4),
                     "threshold": round(hit.threshold, 4)} for hit in result.tags]})
                if not args.json:
                    names = ", ".join(f"{hit.name(args.lang)} ({hit.score:.2f})" for hit in result.tags)
                    print(f"{path}: {names or '(no tag above its threshold)'}", flush=True)
            bar.update(len(paths[start : start + settings.batch_size]))
    if args.json:
        print(json.dumps(records, indent=2, ensure_ascii=False))
    return EXIT_PARTIAL if failed else EXIT_OK


# --- the parser --------------------------------------------------------------------------------
def _add(commands, name: str, text: str) -> argparse.ArgumentParser:  # noqa: ANN001
    return commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phototag",
        description="Tag your photos with RAM++ (and RAM), search them, and write tags where other tools read them.",
        epilog="Settings come from flags, then PHOTOTAG_* environment variables (PHOTOTAG_HOME, PHOTOTAG_DEVICE, "
               "PHOTOTAG_TAGGER, ...), then defaults. Models live in $PHOTOTAG_HOME/models.",
    )
    parser.add_argument("--home", type=Path, help="Phototag's data folder (default: the platform's user data dir)")
    parser.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--precision", help="auto (default: bf16/fp16 on GPUs, fp32 on most CPUs), fp32, bf16, fp16")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = _add(commands, "models", "list, download, import or create model bundles")
    models_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    p = _add(models_commands, "list", "the bundles in the model store (random ones are marked)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_models_list)
    p = _add(models_commands, "download",
             "fetch official weights from Hugging Face (resumable, sha256-checked) and convert them")
    p.add_argument("name", help="ram_plus_swin_l_384 (default tagger), ram_swin_l_384 or clip_vit_b16")
    p.add_argument("--keep-original", action="store_true", help="keep the downloaded .pth after conversion")
    p.set_defaults(func=cmd_models_download)
    p = _add(models_commands, "import",
             "convert a checkpoint file you already have (offline) into a bundle")
    p.add_argument("file", type=Path, help="an official .pth, a bare state dict or a .safetensors file")
    p.add_argument("--as", dest="name", required=True, help="the bundle's name")
    p.add_argument("--arch", help="a registered architecture or a config.json (default: recognised from the file)")
    p.add_argument("--tags", type=Path, help="tag file for a custom vocabulary: name[<TAB>threshold[<TAB>chinese]]")
    p.set_defaults(func=cmd_models_import)
    p = _add(models_commands, "random", "a bundle with seeded random weights, for tests and benchmarks")
    p.add_argument("arch", help="a registered architecture (ram_plus_tiny, ram_plus_swin_l_384, clip_tiny, ...)")
    p.add_argument("--as", dest="name", required=True, help="the bundle's name")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--tags", type=Path, help="tag file for a custom vocabulary")
    p.set_defaults(func=cmd_models_random)
    p = _add(models_commands, "remove", "delete a bundle from the store")
    p.add_argument("name")
    p.set_defaults(func=cmd_models_remove)

    p = _add(commands, "tag-photo", "tag individual photo files and print their tags")
    p.add_argument("paths", nargs="+", metavar="PATH", help="photo files (JPEG, PNG, WebP, HEIC, MPO, TIFF, ...)")
    p.add_argument("--json", action="store_true", help="print a JSON list: path, tags (tag, tag_zh, score, threshold)")
    p.add_argument("--lang", choices=("en", "zh"), default="en", help="tag names in English or Chinese")
    p.add_argument("--tagger", help="model bundle to tag with (default: ram_plus_swin_l_384)")
    p.add_argument("--batch-size", type=int, help="images per model call (default 8)")
    p.add_argument("--chunk-size", type=int, help="tags scored at a time, to bound memory (default: all)")
    p.add_argument("--tags", help="only score these comma-separated tags (English or Chinese names)")
    p.set_defaults(func=cmd_tag_photo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ram_model.errors import PhototagError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PhototagError as exc:
        _say(f"phototag: error: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        _say("phototag: interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
