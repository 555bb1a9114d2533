"""``phototag index``, ``watch``, ``status``, ``failures`` and ``tags``: the library's catalog and its passes."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from contextlib import redirect_stdout
from typing import TYPE_CHECKING, Any

from indexer.cli_common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    add_command,
    catalog_option,
    device_options,
    existing_catalog,
    install_stop,
    json_option,
    print_json,
    say,
    settings_for,
    wait_option,
)

if TYPE_CHECKING:
    from indexer.catalog import Catalog
    from indexer.index import Indexer
    from indexer.settings import Settings


def add_commands(commands: Any) -> None:  # noqa: ANN401
    """index, watch, status and failures (``tags`` comes last in the list: :func:`add_tags_command`)."""
    p = add_command(commands, "index", "find, tag and embed every photo under PATH (an incremental pass)", cmd_index)
    _index_options(p)
    json_option(p, "print the summary (and failures) as JSON")
    p.epilog = ("Unchanged files cost nothing; moved files keep their tags; deleted files are marked missing. "
                "Exit status: 0 when the pass completed (even if some files failed: see 'phototag failures'), "
                "2 on a fatal error (e.g. catalog locked), 130 when interrupted (the next run resumes).")

    p = add_command(commands, "watch", "index PATH, then keep following changes until stopped", cmd_watch)
    _index_options(p)
    p.add_argument("--poll", type=float, metavar="SECONDS",
                   help="poll every SECONDS instead of native events (automatic on NFS/SMB mounts)")
    p.add_argument("--settle", type=float, default=2.0, metavar="SECONDS",
                   help="a new file is read once it has stopped changing for this long (default 2)")

    p = add_command(commands, "status", "counts by status, models and catalog size", cmd_status)
    catalog_option(p)
    json_option(p)

    p = add_command(commands, "failures", "files that could not be indexed, with the reason", cmd_failures)
    catalog_option(p)
    json_option(p)


def add_tags_command(commands: Any) -> None:  # noqa: ANN401
    p = add_command(commands, "tags", "the tags the catalog holds for photos", cmd_tags)
    p.add_argument("photos", nargs="+", metavar="PHOTO")
    catalog_option(p)
    json_option(p)
    p.add_argument("--lang", choices=("en", "zh"), default="en")


def _index_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="photo folders (or files) to index")
    catalog_option(p)
    p.add_argument("--tagger", help="tagger bundle (default: ram_plus_swin_l_384)")
    p.add_argument("--embedder", help="embedder bundle (default: clip_vit_b16)")
    device_options(p, on_command=True)
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
    p.add_argument("--engine", choices=("local", "ray"),
                   help="where identify, decode and the models run: this machine (local, the default) or a Ray "
                        "cluster (ray: pip install 'phototag[ray]'); this process still scans and writes the catalog")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="the Ray cluster to join (the address 'ray start --head' prints; default: RAY_ADDRESS, a "
                        "cluster started on this machine, else a new local one)")
    p.add_argument("--ray-node", dest="ray_nodes", action="append", type=_prefix_and_node, metavar="PREFIX=NODE",
                   help="read the photos under PREFIX on Ray node NODE (its id or IP address: the node the storage "
                        "is attached to) when it can take the work (repeatable)")
    p.add_argument("--include", action="append", default=[], metavar="GLOB",
                   help="only files whose name or relative path matches (repeatable)")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="skip files and folders that match, on top of the defaults (hidden, @eaDir, "
                        ".thumbnails, #recycle, *.xmp; repeatable)")
    wait_option(p)
    p.add_argument("--allow-empty", action="store_true",
                   help="a PATH that is empty or gone is not an error (by default it is refused, as an unmounted "
                        "share would be): the catalog's photos from it are marked missing")


def _prefix_and_node(text: str) -> tuple[str, str]:
    prefix, separator, node = text.rpartition("=")
    if not separator or not prefix or not node:
        raise argparse.ArgumentTypeError(f"{text!r}: give a path prefix and a Ray node as PREFIX=NODE")
    return prefix, node


class _Progress:
    """A tqdm bar per stage on a terminal; otherwise a plain log line every ``interval`` seconds."""

    def __init__(self, interval: float = 10.0) -> None:
        import time

        self._clock = time.monotonic
        self._interactive = sys.stderr.isatty()
        self._bars: dict[str, Any] = {}
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
        say(f"{stage}: {done}{of}" + (f" ({rate:.1f}/s{eta})" if rate > 0 else ""))

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def _indexer(settings: Settings, catalog: Catalog, stop: threading.Event, progress: _Progress,
             args: argparse.Namespace, on_failure: Callable[[Any], None] | None = None) -> Indexer:
    from indexer.catalog_models import choose_models
    from indexer.index import Indexer
    from indexer.personal.hooks import after_store
    from indexer.scan import ScanRules
    from ram_model.cli import lazy_models

    settings = choose_models(catalog, settings).settings  # the catalog's models, unless others were chosen
    if settings.engine == "ray":  # here only their vocabulary, thresholds and input transforms are read
        settings = settings.with_overrides(device="cpu")
    return Indexer.from_settings(
        catalog, *lazy_models(settings), settings, on_progress=progress, stop=stop, on_failure=on_failure,
        rules=ScanRules().with_patterns(include=tuple(args.include), exclude=tuple(args.exclude)),
        after_store=[after_store],
    )


def _summary_line(summary) -> str:  # noqa: ANN001
    parts = [f"{summary.new} new", f"{summary.changed} changed", f"{summary.moved} moved",
             f"{summary.unchanged} unchanged", f"{summary.missing} missing", f"{summary.failed} failed"]
    if summary.duplicates:
        parts.append(f"{summary.duplicates} duplicates copied")
    if summary.restored:
        parts.append(f"{summary.restored} back")
    reads = [f"{stage} {r['bytes'] / 1e6:.1f} MB ({r['bytes_per_photo'] / 1e3:.0f} KB/photo"
             + (f", {r['mb_per_s']:.1f} MB/s)" if r["mb_per_s"] is not None else ")")
             for stage, r in ((stage, reads.report()) for stage, reads in summary.read.items()) if r["photos"]]
    return (", ".join(parts) + f"; tagged {summary.tagged}, embedded {summary.embedded}"
            + (f"; read: {', '.join(reads)}" if reads else ""))


def cmd_index(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog

    settings = settings_for(args)
    stop = install_stop()
    progress = _Progress()
    with Catalog.open(settings.catalog_dir) as catalog, catalog.writer(settings.lock_wait, task="index"):
        if catalog.upgraded_from:
            say(f"upgraded the catalog from schema {catalog.upgraded_from} (backup: {catalog.backup_path})")
        indexer = _indexer(settings, catalog, stop, progress, args,
                           on_failure=None if args.json else (lambda f: say(f"failed: {f.message}")))
        try:
            # Standard output holds the summary only: what a library prints meanwhile (Ray's notices of the
            # workers it restarts, say) goes to standard error.
            with redirect_stdout(sys.stderr):
                summary = indexer.run(args.paths, allow_missing_roots=args.allow_empty)
        finally:
            progress.close()
    if args.json:
        print_json(summary.counts() | {"catalog": str(settings.catalog_dir)}, indent=2)
    else:
        for warning in summary.warnings:  # indexed, with part of its metadata left out
            say(f"warning: {warning.message}")
        say(f"{'interrupted: ' if summary.interrupted else ''}{_summary_line(summary)} "
            f"(catalog: {settings.catalog_dir})")
        if summary.failed:
            say("see them with: phototag failures")
    return EXIT_INTERRUPTED if summary.interrupted else EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    import threading

    from indexer.catalog import Catalog
    from indexer.watch import Watcher

    settings = settings_for(args)
    stop = install_stop()
    with Catalog.open(settings.catalog_dir) as catalog, catalog.writer(settings.lock_wait, task="watch"):
        indexer = _indexer(settings, catalog, stop, _Progress(), args,
                           on_failure=lambda f: say(f"failed: {f.message}"))
        say(f"indexing {', '.join(args.paths)} before watching")
        say(_summary_line(indexer.run(args.paths, allow_missing_roots=args.allow_empty)))
        busy = threading.Lock()

        def on_changes(changed: set[str], deleted: set[str]) -> None:
            with busy:
                summary = indexer.run(sorted(changed | deleted), allow_missing_roots=True)
            say(f"changes: {_summary_line(summary)}")

        with Watcher(args.paths, on_changes, rules=indexer.rules, poll_interval=args.poll,
                     settle_seconds=args.settle):
            say(f"watching {', '.join(args.paths)} ({f'polling every {args.poll}s' if args.poll else 'native events'};"
                " Ctrl-C to stop)")
            while not stop.wait(0.5):
                pass
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from indexer.report import catalog_status

    with existing_catalog(args) as catalog:
        status = catalog_status(catalog)
    if args.json:
        print_json(status, indent=2, default=str)
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
    from indexer.report import failures

    with existing_catalog(args) as catalog:
        rows = failures(catalog)
    if args.json:
        print_json(rows, indent=2)
    elif not rows:
        say("no failed files")
    for row in rows if not args.json else []:
        print(f"{row['path']}\t{row['reason']}\t{row['attempts']} attempt(s)\t{row['message']}")
    return EXIT_OK


def cmd_tags(args: argparse.Namespace) -> int:
    from indexer.report import photo_tags

    results, missing = [], 0
    with existing_catalog(args) as catalog:
        for path in args.photos:
            entry = photo_tags(catalog, path)
            if entry is None:
                missing += 1
                say(f"{path}: not in the catalog (index it with: phototag index {path})")
                continue
            results.append(entry)
    if args.json:
        print_json(results, indent=2)
    else:
        for entry in results:
            names = [f"{t['name_zh'] if args.lang == 'zh' and t['name_zh'] else t['name']}"
                     f"{'' if t['score'] is None else ' ({:.2f})'.format(t['score'])}"
                     f"{'' if t['source'] == 'model' else ' [' + t['source'] + ']'}"
                     f"{' [' + t['state'] + ']' if t['state'] != 'suggested' else ''}"
                     for t in entry["tags"] if t["state"] != "rejected"]
            print(f"{entry['path']} [{entry['status']}]: {', '.join(names) or '(no tags)'}")
    return EXIT_PARTIAL if missing else EXIT_OK
