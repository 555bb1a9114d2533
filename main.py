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
from typing import Any

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


def _settings(args: argparse.Namespace):  # noqa: ANN202
    from indexer.settings import Settings

    return Settings().with_overrides(
        home=args.home, device=args.device, precision=args.precision,
        tagger=getattr(args, "tagger", None), batch_size=getattr(args, "batch_size", None),
        chunk_size=getattr(args, "chunk_size", None), embedder=getattr(args, "embedder", None),
        catalog=getattr(args, "catalog", None), workers=getattr(args, "workers", None),
        lock_wait=getattr(args, "wait", None), compile=getattr(args, "compile", None),
        gpu_decode=getattr(args, "gpu_decode", None),
    )


def _store(settings):  # noqa: ANN001, ANN202
    from ram_model.store import ModelStore

    return ModelStore(settings.models_dir)


def _print_json(data: object, **options: Any) -> None:
    """``data`` as JSON on stdout: a file name that is not valid UTF-8 keeps its bytes as surrogate escapes."""
    from indexer._paths import json_text

    print(json_text(json.dumps(data, ensure_ascii=False, **options)), flush=True)


def _say(message: str) -> None:
    sys.stdout.flush()  # keep results and messages in order on a terminal
    print(message, file=sys.stderr, flush=True)


# --- phototag models ... --------------------------------------------------------------------------
def cmd_models_list(args: argparse.Namespace) -> int:
    store = _store(_settings(args))
    bundles = store.list()
    if args.json:
        _print_json([json.loads(b.to_json()) | {"path": str(b.path)} for b in bundles], indent=2)
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
def _store_with(settings, name: str):  # noqa: ANN001, ANN202
    """The model store, with ``name`` downloaded first if it is a missing default model."""
    from ram_model.pretrained import weight_sources

    store = _store(settings)
    if not store.exists(name) and settings.auto_download and name in weight_sources():
        _say(f"model {name} is not in {store.root} yet: downloading it once")
        store.download(name)
    return store


def _load_tagger(settings, name: str, tags: list[str] | None = None):  # noqa: ANN001, ANN202
    tagger = _store_with(settings, name).load_tagger(
        name, device=settings.device, dtype=settings.precision, chunk_size=settings.chunk_size,
        tags=tags,
    )
    if tagger.bundle.random:
        _say(f"warning: {name} has RANDOM weights (seed {tagger.bundle.source.get('seed')}): its tags are meaningless")
    return tagger


def cmd_tag_photo(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from indexer.settings import CPU_BATCH_SIZE
    from ram_model.errors import ImageError
    from ram_model.preprocess import open_image, preprocess_batch

    settings = _settings(args)
    step = settings.batch_size or CPU_BATCH_SIZE
    tagger = _load_tagger(settings, settings.tagger, tags=args.tags.split(",") if args.tags else None)
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
                    _say(f"skipped: {exc}")
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
        _print_json(records, indent=2)
    return EXIT_PARTIAL if failed else EXIT_OK


# --- phototag index / watch / status / failures / tags ---------------------------------------------
def _load_embedder(settings, name: str):  # noqa: ANN001, ANN202
    embedder = _store_with(settings, name).load_embedder(name, settings.device, settings.precision)
    if embedder.bundle.random:
        _say(f"warning: {name} has RANDOM weights: its embeddings are meaningless")
    return embedder


class _Progress:
    """A tqdm bar per stage on a terminal; otherwise a plain log line every ``interval`` seconds."""

    def __init__(self, interval: float = 10.0) -> None:
        import time

        self._clock = time.monotonic
        self._interactive = sys.stderr.isatty()
        self._bars: dict[str, object] = {}
        self._last: dict[str, float] = {}
        self._started: dict[str, tuple[float, int]] = {}
        self.interval = interval

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if self._interactive:
            from tqdm.auto import tqdm

            bar = self._bars.get(stage)
            if bar is None:
                unit = "file" if stage == "scan" else "photo"
                bar = self._bars[stage] = tqdm(total=total, desc=stage, unit=unit, file=sys.stderr, dynamic_ncols=True)
            if total is not None and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)
            return
        now = self._clock()
        start, first = self._started.setdefault(stage, (now, done))
        finished = total is not None and done >= total
        if not finished and now - self._last.get(stage, 0.0) < self.interval:
            return
        self._last[stage] = now
        rate = (done - first) / (now - start) if now > start + 0.5 else 0.0
        eta = f", ETA {(total - done) / rate / 60:.1f} min" if rate > 0 and total and not finished else ""
        of = f"/{total}" if total is not None else ""
        _say(f"{stage}: {done}{of}" + (f" ({rate:.1f}/s{eta})" if rate > 0 else ""))

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def _install_stop():  # noqa: ANN202
    """First Ctrl-C: finish the current batch and stop cleanly. Second: stop now."""
    import signal
    import threading

    stop = threading.Event()

    def handler(_signum, _frame) -> None:  # noqa: ANN001
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        _say("phototag: stopping after the current batch (Ctrl-C again to stop at once)")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
    return stop


def _indexer(settings, catalog, stop, progress, args, on_failure=None):  # noqa: ANN001, ANN202
    from indexer.catalog_models import choose_models
    from indexer.index import Indexer
    from indexer.personal.hooks import after_store
    from indexer.scan import ScanRules

    settings = choose_models(catalog, settings).settings  # the catalog's models, unless others were chosen
    return Indexer.from_settings(
        catalog, *_lazy_models(settings), settings, on_progress=progress, stop=stop, on_failure=on_failure,
        rules=ScanRules().with_patterns(include=tuple(args.include), exclude=tuple(args.exclude)),
        after_store=[after_store],
    )


def _lazy_models(settings):  # noqa: ANN001, ANN202
    """The tagger and the embedder, loaded only if the pass finds model work: a pass over an unchanged library
    (a nightly run) then takes a second or two instead of the ~6 s two loads cost on a CPU."""
    from ram_model.store import LazyModel

    tagger, embedder = settings.tagger, settings.embedder
    return (LazyModel(_store_with(settings, tagger).get(tagger), lambda: _load_tagger(settings, tagger)),
            LazyModel(_store_with(settings, embedder).get(embedder), lambda: _load_embedder(settings, embedder)))


def _summary_line(summary) -> str:  # noqa: ANN001
    parts = [f"{summary.new} new", f"{summary.changed} changed", f"{summary.moved} moved",
             f"{summary.unchanged} unchanged", f"{summary.missing} missing", f"{summary.failed} failed"]
    if summary.duplicates:
        parts.append(f"{summary.duplicates} duplicates copied")
    if summary.restored:
        parts.append(f"{summary.restored} back")
    return ", ".join(parts) + f"; tagged {summary.tagged}, embedded {summary.embedded}"


def cmd_index(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog

    settings = _settings(args)
    stop = _install_stop()
    progress = _Progress()
    with Catalog.open(settings.catalog_dir) as catalog, catalog.writer(settings.lock_wait, task="index"):
        if catalog.upgraded_from:
            _say(f"upgraded the catalog from schema {catalog.upgraded_from} (backup: {catalog.backup_path})")
        indexer = _indexer(settings, catalog, stop, progress, args,
                           on_failure=None if args.json else (lambda f: _say(f"failed: {f.message}")))
        try:
            summary = indexer.run(args.paths, allow_missing_roots=args.allow_empty)
        finally:
            progress.close()
    if args.json:
        _print_json(summary.counts() | {"catalog": str(settings.catalog_dir)}, indent=2)
    else:
        for warning in summary.warnings:  # indexed, with part of its metadata left out
            _say(f"warning: {warning.message}")
        _say(f"{'interrupted: ' if summary.interrupted else ''}{_summary_line(summary)} "
             f"(catalog: {settings.catalog_dir})")
        if summary.failed:
            _say("see them with: phototag failures")
    return EXIT_INTERRUPTED if summary.interrupted else EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    import threading

    from indexer.catalog import Catalog
    from indexer.watch import Watcher

    settings = _settings(args)
    stop = _install_stop()
    with Catalog.open(settings.catalog_dir) as catalog, catalog.writer(settings.lock_wait, task="watch"):
        indexer = _indexer(settings, catalog, stop, _Progress(), args,
                           on_failure=lambda f: _say(f"failed: {f.message}"))
        _say(f"indexing {', '.join(args.paths)} before watching")
        _say(_summary_line(indexer.run(args.paths, allow_missing_roots=args.allow_empty)))
        busy = threading.Lock()

        def on_changes(changed: set[str], deleted: set[str]) -> None:
            with busy:
                summary = indexer.run(sorted(changed | deleted), allow_missing_roots=True)
            _say(f"changes: {_summary_line(summary)}")

        with Watcher(args.paths, on_changes, rules=indexer.rules, poll_interval=args.poll,
                     settle_seconds=args.settle):
            _say(f"watching {', '.join(args.paths)} ({f'polling every {args.poll}s' if args.poll else 'native events'};"
                 " Ctrl-C to stop)")
            while not stop.wait(0.5):
                pass
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog
    from indexer.report import catalog_status

    settings = _settings(args)
    with Catalog.open(settings.catalog_dir, create=False) as catalog:
        status = catalog_status(catalog)
    if args.json:
        _print_json(status, indent=2, default=str)
        return EXIT_OK
    print(f"catalog: {status['catalog']} ({status['size_bytes'] / 2**20:.1f} MiB, schema {status['schema']})")
    print("photos: " + ", ".join(f"{count} {state}" for state, count in status["photos"].items()))
    print(f"tags on photos: {status['photo_tags']}; embeddings: {status['embeddings']}")
    progress = status["progress"]
    print(f"searchable by free text (embedded): {progress['embedded']} of {progress['total']} photos; "
          f"tagged: {progress['tagged']} of {progress['total']}; backfill (older models' results, redone after "
          f"new photos): {progress['backfill']}")
    for model in status["models"]:
        print(f"model {model['version']}: {model['photos']} photos ({model['kind']})")
    if status["last_run"]:
        run = status["last_run"]
        print(f"last run: {run['started_at']} {run['outcome']} {run['summary'] or ''}")
    return EXIT_OK


def cmd_failures(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog
    from indexer.report import failures

    settings = _settings(args)
    with Catalog.open(settings.catalog_dir, create=False) as catalog:
        rows = failures(catalog)
    if args.json:
        _print_json(rows, indent=2)
    elif not rows:
        _say("no failed files")
    for row in rows if not args.json else []:
        print(f"{row['path']}\t{row['reason']}\t{row['attempts']} attempt(s)\t{row['message']}")
    return EXIT_OK


def cmd_tags(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog
    from indexer.report import photo_tags

    settings = _settings(args)
    results, missing = [], 0
    with Catalog.open(settings.catalog_dir, create=False) as catalog:
        for path in args.photos:
            entry = photo_tags(catalog, path)
            if entry is None:
                missing += 1
                _say(f"{path}: not in the catalog (index it with: phototag index {path})")
                continue
            results.append(entry)
    if args.json:
        _print_json(results, indent=2)
    else:
        for entry in results:
            names = [f"{t['name_zh'] if args.lang == 'zh' and t['name_zh'] else t['name']}"
                     f"{'' if t['score'] is None else ' ({:.2f})'.format(t['score'])}"
                     f"{'' if t['source'] == 'model' else ' [' + t['source'] + ']'}"
                     f"{' [' + t['state'] + ']' if t['state'] != 'suggested' else ''}"
                     for t in entry["tags"] if t["state"] != "rejected"]
            print(f"{entry['path']} [{entry['status']}]: {', '.join(names) or '(no tags)'}")
    return EXIT_PARTIAL if missing else EXIT_OK


# --- phototag gui --------------------------------------------------------------------------------
def cmd_gui(args: argparse.Namespace) -> int:
    settings = _settings(args)
    folder = None
    if args.folder is not None:
        folder = args.folder.expanduser()
        if not folder.is_dir():
            _say(f"phototag gui: {folder} is not a folder: give a folder of photos (is the share mounted?)")
            return EXIT_ERROR
    from gui import run

    return run(str(folder) if folder is not None else None, settings)


# --- phototag tag (corrections) ------------------------------------------------------------------
def cmd_tag(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog
    from indexer.personal.corrections import apply_edits, photo_ids_for

    settings = _settings(args)
    edits = [item for item in args.items if item[:1] in "+-=" and len(item) > 1]
    paths = [item for item in args.items if item not in edits]
    if not edits or not paths:
        _say("phototag tag: give photos and edits, e.g. phototag tag IMG_1.jpg IMG_2.jpg +dog -cat "
             "(+ accept or add, - reject, = undo a decision)")
        return EXIT_ERROR
    with Catalog.open(settings.catalog_dir, create=False) as catalog, \
            catalog.writer(settings.lock_wait, task="tag"):
        changes = apply_edits(catalog, photo_ids_for(catalog, paths), edits)
    if args.json:
        _print_json([{"photo_id": c.photo_id, "tag": c.tag, "before": c.before, "after": c.after}
                     for c in changes])
    else:
        _say(f"{len(changes)} change(s) on {len(paths)} photo(s)" if changes else "nothing to change")
    return EXIT_OK


# --- phototag custom-tag / review / finetune ---------------------------------------------------
def cmd_custom_tag_add(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog
    from indexer.catalog_models import choose_models
    from indexer.personal import custom_tags
    from indexer.personal.corrections import photo_ids_for

    settings = _settings(args)
    with Catalog.open(settings.catalog_dir, create=False) as catalog:
        settings = choose_models(catalog, settings, comparing=True).settings
        embedder = _load_embedder(settings, settings.embedder) if args.description else None
        examples = photo_ids_for(catalog, args.example)
        tag = custom_tags.build(catalog, args.name, args.description, examples, text_embedder=embedder,
                                threshold=args.threshold)
        if args.dry_run:
            found = custom_tags.matches(catalog, tag)
            for path, score in found[: args.limit]:
                print(f"{score:.3f}  {path}")
            _say(f"dry run: {tag.name} (threshold {tag.threshold:.2f}) would be suggested on {len(found)} photo(s)")
            return EXIT_OK
        with catalog.writer(settings.lock_wait, task="custom-tag"):
            custom_tags.save(catalog, tag)
            counts = custom_tags.apply(catalog, [tag.name], text_embedder=embedder)
    _say(f"custom tag {tag.name} (threshold {tag.threshold:.2f}): suggested on {counts[tag.name]} photo(s)")
    return EXIT_OK


def cmd_custom_tag_list(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog
    from indexer.personal.custom_tags import list_custom

    with Catalog.open(_settings(args).catalog_dir, create=False) as catalog:
        tags = list_custom(catalog)
    if args.json:
        _print_json(tags, indent=2)
        return EXIT_OK
    if not tags:
        _say("no custom tags: define one with phototag custom-tag add NAME --description TEXT")
    for tag in tags:
        defined = [f'"{d}"' for d in tag["descriptions"]] + [str(p) for p in tag["example_paths"]]
        print(f"{tag['name']}\tthreshold {tag['threshold']:.2f}\t{tag['photos']} photo(s)\t{'; '.join(defined)}")
    return EXIT_OK


def cmd_custom_tag_remove(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog
    from indexer.personal.custom_tags import remove

    settings = _settings(args)
    with Catalog.open(settings.catalog_dir, create=False) as catalog, \
            catalog.writer(settings.lock_wait, task="custom-tag"):
        counts = remove(catalog, args.name)
    _say(f"removed {args.name}: {counts['suggestions_removed']} suggestion(s) gone, "
         f"{counts['accepted_kept']} accepted kept as user tags")
    return EXIT_OK


def cmd_custom_tag_apply(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog
    from indexer.catalog_models import choose_models
    from indexer.personal import custom_tags, finetune

    settings = _settings(args)
    with Catalog.open(settings.catalog_dir, create=False) as catalog, \
            catalog.writer(settings.lock_wait, task="custom-tag"):
        with catalog.session() as session:
            tags = custom_tags.load_all(session, [args.name] if args.name else None)
            version = custom_tags.catalog_embedder_version(session)
            active = finetune.active_model_id(session)
        stale = any(t.descriptions and t.embedder_version != version for t in tags)
        settings = choose_models(catalog, settings, comparing=True).settings if stale else settings
        embedder = _load_embedder(settings, settings.embedder) if stale else None
        counts = custom_tags.apply(catalog, [t.name for t in tags], text_embedder=embedder)
        if active is not None:  # custom scores reset its tags to the base state: apply the personal model again
            finetune.apply_active(catalog)
    for name, count in counts.items():
        print(f"{name}\t{count} photo(s)")
    return EXIT_OK


def cmd_review(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog
    from indexer.personal.review import review_queue

    with Catalog.open(_settings(args).catalog_dir, create=False) as catalog:
        items = review_queue(catalog, tag=args.tag, limit=args.limit)
    if args.json:
        _print_json([item.to_dict() for item in items], indent=2)
        return EXIT_OK
    for item in items:
        print(f"{item.priority:.3f}  {item.tag} ({item.score:.2f}, threshold {item.threshold:.2f})  {item.path}")
    _say(f"{len(items)} suggestion(s) to review: accept with phototag tag PHOTO +TAG, reject with -TAG"
         if items else "nothing to review")
    return EXIT_OK


def _print_finetune_report(report: dict) -> None:
    for tag in report["tags"]:
        before, after = tag["before"], tag["after"]
        print(f"{tag['tag']}\t{tag['positives']}+/{tag['negatives']}-\t{tag['method']}\t"
              f"P {before['precision']:.2f}->{after['precision']:.2f}  R {before['recall']:.2f}->{after['recall']:.2f}"
              f"  F1 {before['f1']:.2f}->{after['f1']:.2f}  macro-F1 {before['macro_f1']:.2f}->"
              f"{after['macro_f1']:.2f} ({tag['gain']:+.3f})")
    _say(report["reason"])


def cmd_finetune(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog
    from indexer.personal import finetune

    settings = _settings(args)
    with Catalog.open(settings.catalog_dir, create=False) as catalog:
        if args.status:
            found = finetune.versions(catalog)
            active = [v for v in found if v["active"]]
            shown = {v["id"]: v for v in active + found[-1:]}
            if args.json:
                _print_json(list(shown.values()), indent=2)
                return EXIT_OK
            if not found:
                _say("no personal model yet: run phototag finetune")
            for version in shown.values():
                state = "active" if version["active"] else ("accepted" if version["accepted"] else "not activated")
                print(f"personal model {version['id']} ({version['created_at']}, {state}, "
                      f"{version['corrections']} corrections)")
                _print_finetune_report(version["report"])
            if found and not active:
                _say("no personal model is active: the base models' suggestions apply")
            return EXIT_OK
        if args.dry_run:
            result = finetune.train(catalog, dry_run=True)
        else:
            with catalog.writer(settings.lock_wait, task="finetune"):
                if args.rollback:
                    previous = finetune.rollback(catalog)
                    _say(f"rolled back: personal model {previous} is active" if previous is not None
                         else "rolled back: no personal model is active; the base models' suggestions are back")
                    return EXIT_OK
                if args.apply:
                    counts = finetune.apply_active(catalog)
                    _say(f"applied to {counts['photos']} photo(s): {counts['added']} suggestion(s) added, "
                         f"{counts['withheld']} withheld")
                    return EXIT_OK
                result = finetune.train(catalog)
    if args.json:
        _print_json({"model_id": result.model_id, "activated": result.activated} | result.report, indent=2)
    else:
        _print_finetune_report(result.report)
        if result.activated:
            _say(f"personal model {result.model_id} is active for new photos; apply it to the library with "
                 "phototag finetune --apply")
        elif args.dry_run:
            _say("dry run: nothing stored")
    return EXIT_OK



# --- phototag search ---------------------------------------------------------------------------
def _searcher(settings, catalog):  # noqa: ANN001, ANN202
    """A Searcher on ``catalog``'s embeddings whose CLIP embedder (the catalog's) loads only when a query has
    words, or ``similar:`` a photo the catalog has no embedding of."""
    from functools import cache

    from indexer.catalog_models import choose_models
    from indexer.search.engine import Searcher

    choice = cache(lambda: choose_models(catalog, settings, comparing=True))  # only a query with embeddings asks

    def load():  # noqa: ANN202
        return _load_embedder(choice().settings, choice().settings.embedder)

    return Searcher(catalog, load, embedder_version=lambda: choice().embedder_version,
                    vector_index=settings.vector_index)


def cmd_search(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog

    settings = _settings(args)
    text = " ".join(args.query)
    with Catalog.open(settings.catalog_dir, create=False) as catalog:
        searcher = _searcher(settings, catalog)
        if args.list:
            for name, saved in searcher.saved().items():
                print(f"@{name}\t{saved}")
            return EXIT_OK
        if args.delete:
            searcher.delete_saved(args.delete)
            _say(f"deleted the saved search @{args.delete}")
            return EXIT_OK
        if not text:
            _say("phototag search: give a query, e.g. phototag search tag:dog beach (see the README)")
            return EXIT_ERROR
        if args.save:
            searcher.save(args.save, text)
            _say(f"saved as @{args.save}: {text}")
            return EXIT_OK
        min_score = settings.search_min_score if args.min_score is None else args.min_score
        found = searcher.search(text, limit=args.limit, min_score=min_score, sort=args.sort)
    for result in found.results:
        if args.json:
            _print_json({"path": result.path, "score": round(result.score, 4), "tags": result.tags,
                         "taken_at": result.taken_at.isoformat() if result.taken_at else None})
        else:
            tags = f"  [{', '.join(result.tags)}]" if result.tags else ""
            print(f"{result.score:.3f}  {result.path}{tags}")
    if not args.json:
        shown = len(found.results)
        more = f", {shown} shown" if shown < found.total else ""
        at_least = "at least " if found.total_is_lower_bound else ""
        _say(f"{at_least}{found.total} match{'es' if found.total != 1 else ''}{more}")
    return EXIT_OK


# --- phototag write-metadata / undo-metadata ---------------------------------------------------
def cmd_write_metadata(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog
    from indexer.metadata.write import MetadataSettings, MetadataWriter, WriteOptions, select_photos

    settings = _settings(args)
    defaults = MetadataSettings()
    options = WriteOptions(mode=args.mode or defaults.metadata_mode, include=args.include,
                           lang=args.lang or defaults.metadata_lang,
                           sidecar_naming=args.sidecar_naming or defaults.sidecar_naming,
                           profile=args.profile or defaults.metadata_profile,
                           keep_mtime=args.keep_mtime, dry_run=args.dry_run)
    text = " ".join(args.query)

    said: list[str] = []

    def show(report) -> None:  # noqa: ANN001
        if report.status == "skipped":
            if report.message not in said[-1:]:  # a photo's two files skipped for one reason: say it once
                _say(report.line())
                said.append(report.message)
        elif report.status in ("written", "would_write"):
            print(report.line(), flush=True)
        for note in report.notes if report.status != "unchanged" else ():
            print(f"  note: {note}", flush=True)

    with Catalog.open(settings.catalog_dir, create=False) as catalog:
        searcher = _searcher(settings, catalog) if text else None
        photo_ids = select_photos(catalog, text, searcher, min_score=settings.search_min_score)
        writer = MetadataWriter(catalog, options, on_file=None if args.json else show,
                                stop=None if args.dry_run else _install_stop())
        if args.dry_run:
            summary = writer.run(photo_ids)
        else:
            with catalog.writer(settings.lock_wait, task="write-metadata"):
                summary = writer.run(photo_ids)
    counts = summary.counts()
    if args.json:
        _print_json({"run": summary.run_id, "dry_run": summary.dry_run, "interrupted": summary.interrupted,
                     "counts": counts, "files": [report.to_dict() for report in summary.files]},
                    indent=2)
    elif args.dry_run:
        _say(f"dry run: {counts['would_write']} file(s) would be written, {counts['unchanged']} unchanged, "
             f"{counts['skipped']} skipped; nothing was changed")
    else:
        undo = f"; undo with: phototag undo-metadata {summary.run_id}" if summary.run_id else ""
        _say(f"{'interrupted: ' if summary.interrupted else ''}wrote {counts['written']} file(s), "
             f"{counts['unchanged']} unchanged, {counts['skipped']} skipped{undo}")
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_PARTIAL if summary.skipped else EXIT_OK


def cmd_undo_metadata(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog
    from indexer.metadata.journal import list_runs, undo_run

    settings = _settings(args)

    def show(report) -> None:  # noqa: ANN001
        if report.status == "skipped":
            _say(f"skipped: {report.message}")
        elif report.status != "unchanged":
            print(f"{report.status.replace('_', ' ')} {report.path}", flush=True)

    with Catalog.open(settings.catalog_dir, create=False) as catalog:
        if args.list:
            runs = list_runs(catalog.directory)
            if args.json:
                _print_json([{"run": r.id, "started_at": r.started_at, "options": r.options, "counts": r.counts,
                              "undone": r.undone} for r in runs], indent=2)
            elif not runs:
                _say("no metadata runs in this catalog")
            for run in runs if not args.json else []:
                options = ", ".join(f"{key}={run.options.get(key)}" for key in ("mode", "include", "lang"))
                written = "unfinished" if run.counts is None else f"{run.counts.get('written', 0)} file(s) written"
                print(f"{run.id}  {run.started_at}  {options}  {written}{'  [undone]' if run.undone else ''}")
            return EXIT_OK
        on_file = None if args.json else show
        if args.dry_run:
            summary = undo_run(catalog, args.run, force=args.force, dry_run=True, on_file=on_file)
        else:
            with catalog.writer(settings.lock_wait, task="undo-metadata"):
                summary = undo_run(catalog, args.run, force=args.force, on_file=on_file)
    counts = summary.counts()
    if args.json:
        _print_json({"run": summary.run_id, "dry_run": summary.dry_run, "complete": summary.complete,
                     "counts": counts, "files": [vars(report) for report in summary.files]},
                    indent=2)
    else:
        done = ", ".join(f"{count} {status.replace('_', ' ')}" for status, count in counts.items()) or "nothing to do"
        more = "" if summary.complete else " (files changed since the run are kept: --force restores them anyway)"
        _say(f"{'dry run: ' if summary.dry_run else ''}run {summary.run_id}: {done}{more}")
    return EXIT_OK if summary.complete else EXIT_PARTIAL


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
    parser.add_argument("--precision", help="auto (default: fp16 on GPUs, fp32 on most CPUs), fp32, bf16, fp16")
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
    p.add_argument("--as", dest="name", required=True,
                   help="the bundle's name: letters, digits, '.', '-' and '_', starting with a letter, digit or '_'")
    p.add_argument("--arch", help="a registered architecture or a config.json (default: recognised from the file)")
    p.add_argument("--tags", type=Path, help="tag file for a custom vocabulary: name[<TAB>threshold[<TAB>chinese]]")
    p.set_defaults(func=cmd_models_import)
    p = _add(models_commands, "random", "a bundle with seeded random weights, for tests and benchmarks")
    p.add_argument("arch", help="a registered architecture (ram_plus_tiny, ram_plus_swin_l_384, clip_tiny, ...)")
    p.add_argument("--as", dest="name", required=True,
                   help="the bundle's name: letters, digits, '.', '-' and '_', starting with a letter, digit or '_'")
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

    def catalog_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--catalog", type=Path, help="catalog folder (default: $PHOTOTAG_HOME/catalog)")

    def index_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("paths", nargs="+", metavar="PATH", help="photo folders (or files) to index")
        catalog_option(p)
        p.add_argument("--tagger", help="tagger bundle (default: ram_plus_swin_l_384)")
        p.add_argument("--embedder", help="embedder bundle (default: clip_vit_b16)")
        # Also accepted before the command; SUPPRESS keeps `phototag --device cpu index` working.
        p.add_argument("--device", default=argparse.SUPPRESS, help="auto (default), cpu, cuda, cuda:N or mps")
        p.add_argument("--precision", default=argparse.SUPPRESS, help="auto (default), fp32, bf16, fp16")
        p.add_argument("--batch-size", type=int,
                       help="images per model call (default: 8 on a CPU; on a GPU the largest that fits in memory)")
        p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                       help="on a GPU, torch.compile the models first: about a minute, then faster (default: only "
                            "for passes of 100,000 photos or more)")
        p.add_argument("--no-gpu-decode", dest="gpu_decode", action="store_false", default=None,
                       help="on a GPU, decode every photo on the CPU (default: plain JPEGs are decoded by the GPU)")
        p.add_argument("--workers", type=int,
                       help="decode worker processes (default: cores - 1, at most 8; 0 on 2 cores or fewer; "
                            "a pass over a few photos runs in this process)")
        p.add_argument("--include", action="append", default=[], metavar="GLOB",
                       help="only files whose name or relative path matches (repeatable)")
        p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                       help="skip files and folders that match, on top of the defaults (hidden, @eaDir, "
                            ".thumbnails, #recycle, *.xmp; repeatable)")
        p.add_argument("--wait", type=float, metavar="SECONDS",
                       help="if another Phototag process is writing this catalog, wait this long (default: exit)")
        p.add_argument("--allow-empty", action="store_true",
                       help="a PATH that is empty or gone is not an error (by default it is refused, as an unmounted "
                            "share would be): the catalog's photos from it are marked missing")

    p = _add(commands, "index", "find, tag and embed every photo under PATH (an incremental pass)")
    index_options(p)
    p.add_argument("--json", action="store_true", help="print the summary (and failures) as JSON")
    p.epilog = ("Unchanged files cost nothing; moved files keep their tags; deleted files are marked missing. "
                "Exit status: 0 when the pass completed (even if some files failed: see 'phototag failures'), "
                "2 on a fatal error (e.g. catalog locked), 130 when interrupted (the next run resumes).")
    p.set_defaults(func=cmd_index)

    p = _add(commands, "watch", "index PATH, then keep following changes until stopped")
    index_options(p)
    p.add_argument("--poll", type=float, metavar="SECONDS",
                   help="poll every SECONDS instead of native events (automatic on NFS/SMB mounts)")
    p.add_argument("--settle", type=float, default=2.0, metavar="SECONDS",
                   help="a new file is read once it has stopped changing for this long (default 2)")
    p.set_defaults(func=cmd_watch)

    p = _add(commands, "status", "counts by status, models and catalog size")
    catalog_option(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = _add(commands, "failures", "files that could not be indexed, with the reason")
    catalog_option(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_failures)

    p = _add(commands, "gui", "open the desktop app: browse, search and correct tags (FOLDER is added and "
                              "indexed in the background)")
    p.add_argument("folder", nargs="?", type=Path, metavar="FOLDER", help="a photo folder to add to the library")
    catalog_option(p)
    p.set_defaults(func=cmd_gui)

    p = _add(commands, "tag", "correct tags: +TAG accepts (or adds) a tag, -TAG rejects it, =TAG undoes a decision")
    p.add_argument("items", nargs="+", metavar="PHOTO|+TAG|-TAG|=TAG",
                   help="photo files, then edits; a rejected tag is never suggested again for that photo")
    catalog_option(p)
    p.add_argument("--json", action="store_true", help="print the changes as JSON")
    p.add_argument("--wait", type=float, metavar="SECONDS", help="wait this long for another writer to finish")
    p.set_defaults(func=cmd_tag)

    custom = _add(commands, "custom-tag", "define your own tags by descriptions or example photos (scored with CLIP)")
    custom_commands = custom.add_subparsers(dest="custom_command", required=True, metavar="ACTION")
    p = _add(custom_commands, "add", "define (or redefine) a custom tag and suggest it on the whole library")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--description", action="append", default=[], metavar="TEXT",
                   help='what it looks like, e.g. "a red bicycle" (repeatable)')
    p.add_argument("--example", action="append", default=[], metavar="PHOTO",
                   help="an indexed photo that shows it (repeatable; it gets the tag as accepted)")
    p.add_argument("--threshold", type=float, metavar="X",
                   help="CLIP cosine to suggest it at (default 0.25 descriptions, 0.8 examples, 0.5 both)")
    p.add_argument("--dry-run", action="store_true", help="show the photos it would be suggested on; store nothing")
    p.add_argument("--limit", type=int, default=50, help="photos shown by --dry-run (default 50)")
    catalog_option(p)
    p.add_argument("--wait", type=float, metavar="SECONDS", help="wait this long for another writer to finish")
    p.set_defaults(func=cmd_custom_tag_add)
    p = _add(custom_commands, "list", "the custom tags, their definitions and how many photos carry them")
    catalog_option(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_custom_tag_list)
    p = _add(custom_commands, "remove", "forget a custom tag and its suggestions (accepted ones stay as user tags)")
    p.add_argument("name", metavar="NAME")
    catalog_option(p)
    p.add_argument("--wait", type=float, metavar="SECONDS", help="wait this long for another writer to finish")
    p.set_defaults(func=cmd_custom_tag_remove)
    p = _add(custom_commands, "apply", "score custom tags (all, or NAME) on every photo again")
    p.add_argument("name", nargs="?", metavar="NAME")
    catalog_option(p)
    p.add_argument("--wait", type=float, metavar="SECONDS", help="wait this long for another writer to finish")
    p.set_defaults(func=cmd_custom_tag_apply)

    p = _add(commands, "review",
             "the suggestions most worth a look: nearest their threshold, often-corrected tags first")
    catalog_option(p)
    p.add_argument("--tag", metavar="T", help="only this tag")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_review)

    p = _add(commands, "finetune", "learn from your corrections; activate the result only if it does better")
    catalog_option(p)
    action = p.add_mutually_exclusive_group()
    action.add_argument("--dry-run", action="store_true", help="train and evaluate; store and activate nothing")
    action.add_argument("--status", action="store_true", help="the active and latest personal models' numbers")
    action.add_argument("--rollback", action="store_true", help="re-activate the previous personal model (or none)")
    action.add_argument("--apply", action="store_true", help="apply the active personal model to the whole library")
    p.add_argument("--json", action="store_true")
    p.add_argument("--wait", type=float, metavar="SECONDS", help="wait this long for another writer to finish")
    p.set_defaults(func=cmd_finetune)

    p = _add(commands, "search", "find photos by tags, free text, example photos, date, place and camera")
    p.add_argument("query", nargs="*", metavar="QUERY",
                   help='e.g. tag:dog beach, "a dog on the beach", similar:IMG.jpg, date:2023 camera:sony, @saved')
    catalog_option(p)
    p.add_argument("--limit", type=int, default=50, help="at most this many results (default 50)")
    p.add_argument("--min-score", type=float, metavar="S",
                   help="relevance cutoff for free-text and similar: terms (CLIP cosine; default 0.2)")
    p.add_argument("--sort", choices=("relevance", "date"), default="relevance")
    p.add_argument("--json", action="store_true", help="one JSON object per result: path, score, tags, taken_at")
    p.add_argument("--save", metavar="NAME", help="save the query as @NAME instead of running it")
    p.add_argument("--list", action="store_true", help="list saved searches")
    p.add_argument("--delete", metavar="NAME", help="delete the saved search @NAME")
    p.add_argument("--embedder", help="embedder bundle for text and image queries (default: clip_vit_b16)")
    p.epilog = "Query language: see 'Search' in the README. Exit status 0, or 2 for a malformed query."
    p.set_defaults(func=cmd_search)

    from indexer.metadata.profiles import PROFILES as PROFILE_NAMES

    p = _add(commands, "write-metadata",
             "write tags as keywords into XMP sidecars or the photos themselves, where other tools read them")
    p.add_argument("query", nargs="*", metavar="QUERY",
                   help="which photos, in the search language (default: every indexed photo); "
                        "put '--' before a query that starts with '-'")
    catalog_option(p)
    p.add_argument("--for", dest="profile", choices=tuple(PROFILE_NAMES), metavar="APP",
                   help="the photo app(s) to write for, which decides the fields, the sidecar names and (unless "
                        "--mode) whether JPEGs are written into: " + ", ".join(PROFILE_NAMES) + " (default: all, "
                        "every app sees the tags: JPEGs embedded plus IMG.jpg.xmp, RAW files IMG.CR2.xmp and "
                        "IMG.xmp)")
    p.add_argument("--mode", choices=("sidecar", "embed", "both"),
                   help="sidecar: only XMP sidecars, the photos are never touched; embed: into JPEGs and MPOs "
                        "(XMP, IPTC, XPKeywords; other formats get a sidecar); both (default: the --for app's "
                        "choice)")
    p.add_argument("--include", choices=("accepted", "suggested"), default="accepted",
                   help="accepted: tags a person accepted or added (default); suggested: also the model's suggestions")
    p.add_argument("--lang", choices=("en", "zh", "both"), help="keyword language (default: en)")
    p.add_argument("--sidecar-naming", choices=("ext", "replace"),
                   help="override the --for app's sidecar names for every photo: ext: IMG.jpg.xmp; replace: IMG.xmp")
    p.add_argument("--keep-mtime", action="store_true", help="keep a rewritten photo's modification time")
    p.add_argument("--dry-run", action="store_true", help="show the keywords to add and remove per file")
    p.add_argument("--json", action="store_true", help="print the run: run id, counts, and per file what was done")
    p.add_argument("--wait", type=float, metavar="SECONDS",
                   help="if another Phototag process is writing this catalog, wait this long (default: exit)")
    p.add_argument("--embedder", help="embedder bundle for free-text and similar: queries (default: clip_vit_b16)")
    p.epilog = ("Every run backs up each file it changes into the catalog folder first: 'phototag undo-metadata' "
                "restores them. Exit status: 0 done, 1 some files skipped (each reported, with why), 2 fatal error, "
                "130 interrupted (after the current photo).")
    p.set_defaults(func=cmd_write_metadata)

    p = _add(commands, "undo-metadata", "restore every file a write-metadata run changed, byte for byte")
    p.add_argument("run", nargs="?", metavar="RUN", help="the run to undo (default: the last one not yet undone)")
    catalog_option(p)
    p.add_argument("--force", action="store_true", help="restore files changed since the run too")
    p.add_argument("--list", action="store_true", help="list the runs")
    p.add_argument("--dry-run", action="store_true", help="show what would be restored; change nothing")
    p.add_argument("--json", action="store_true")
    p.add_argument("--wait", type=float, metavar="SECONDS",
                   help="if another Phototag process is writing this catalog, wait this long (default: exit)")
    p.set_defaults(func=cmd_undo_metadata)

    p = _add(commands, "tags", "the tags the catalog holds for photos")
    p.add_argument("photos", nargs="+", metavar="PHOTO")
    catalog_option(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--lang", choices=("en", "zh"), default="en")
    p.set_defaults(func=cmd_tags)
    return parser


# Commands whose free arguments may start with '-' (a query's -tag:cat, a correction's -cat).
_DASH_COMMANDS = {
    "search": ({"--catalog", "--limit", "--min-score", "--sort", "--save", "--delete", "--embedder"},
               {"--json", "--list", "-h", "--help"}),
    "tag": ({"--catalog", "--wait"}, {"--json", "-h", "--help"}),
    "write-metadata": ({"--catalog", "--for", "--mode", "--include", "--lang", "--sidecar-naming", "--wait",
                        "--embedder"},
                       {"--keep-mtime", "--dry-run", "--json", "-h", "--help"}),
}


def _search_argv(argv: list[str]) -> list[str]:
    """Let a search query contain ``-tag:cat`` or ``-"fog"`` (and ``phototag tag`` a ``-cat``): everything
    after the command that is not one of its options goes after a ``--``, so argparse does not take it
    for an unknown option."""
    command = next((a for a in argv if a in _DASH_COMMANDS), None)
    if command is None or "--" in argv:
        return argv
    with_value, flags = _DASH_COMMANDS[command]
    at = argv.index(command) + 1
    options, query, rest = [], [], argv[at:]
    i = 0
    while i < len(rest):
        token = rest[i]
        name = token.split("=", 1)[0]
        if name in with_value:
            options += rest[i : i + (1 if "=" in token else 2)]
            i += 1 if "=" in token else 2
            continue
        (options if token in flags else query).append(token)
        i += 1
    return argv[:at] + options + ["--"] + query


def _escaping_streams() -> None:
    """Let stdout and stderr print any path: a byte of a file name that is not valid UTF-8 is shown as ``\\xNN``
    (indexer._paths.display_path) instead of raising UnicodeEncodeError or writing raw bytes."""
    import codecs

    from indexer._paths import escape_undecodable

    codecs.register_error("phototag-display", escape_undecodable)
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="phototag-display")


def main(argv: Sequence[str] | None = None) -> int:
    from ram_model.errors import PhototagError

    _escaping_streams()
    args = build_parser().parse_args(_search_argv(list(sys.argv[1:] if argv is None else argv)))
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
