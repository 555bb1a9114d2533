"""``phototag write-metadata`` and ``undo-metadata``: tags as keywords where other tools read them, and back."""

from __future__ import annotations

import argparse
from typing import Any

from indexer.cli_common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    add_command,
    catalog_option,
    install_stop,
    json_option,
    print_json,
    say,
    settings_for,
    wait_option,
)
from indexer.search.cli import searcher_for


def add_commands(commands: Any) -> None:  # noqa: ANN401
    from indexer.metadata.profiles import PROFILES as PROFILE_NAMES

    p = add_command(commands, "write-metadata",
                    "write tags as keywords into XMP sidecars or the photos themselves, where other tools read them",
                    cmd_write_metadata, dashed_arguments=True)
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
    json_option(p, "print the run: run id, counts, and per file what was done")
    wait_option(p)
    p.add_argument("--embedder", help="embedder bundle for free-text and similar: queries (default: clip_vit_b16)")
    p.epilog = ("Every run backs up each file it changes into the catalog folder first: 'phototag undo-metadata' "
                "restores them. Exit status: 0 done, 1 some files skipped (each reported, with why), 2 fatal error, "
                "130 interrupted (after the current photo).")

    p = add_command(commands, "undo-metadata", "restore every file a write-metadata run changed, byte for byte",
                    cmd_undo_metadata)
    p.add_argument("run", nargs="?", metavar="RUN", help="the run to undo (default: the last one not yet undone)")
    catalog_option(p)
    p.add_argument("--force", action="store_true", help="restore files changed since the run too")
    p.add_argument("--list", action="store_true", help="list the runs")
    p.add_argument("--dry-run", action="store_true", help="show what would be restored; change nothing")
    json_option(p)
    wait_option(p)


def cmd_write_metadata(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog
    from indexer.metadata.write import MetadataWriter, WriteOptions, select_photos

    settings = settings_for(args)
    options = WriteOptions(mode=args.mode or settings.metadata_mode, include=args.include,
                           lang=args.lang or settings.metadata_lang,
                           sidecar_naming=args.sidecar_naming or settings.sidecar_naming,
                           profile=args.profile or settings.metadata_profile,
                           keep_mtime=args.keep_mtime, dry_run=args.dry_run)
    text = " ".join(args.query)

    said: list[str] = []

    def show(report) -> None:  # noqa: ANN001
        if report.status == "skipped":
            if report.message not in said[-1:]:  # a photo's two files skipped for one reason: say it once
                say(report.line())
                said.append(report.message)
        elif report.status in ("written", "would_write"):
            print(report.line(), flush=True)
        for note in report.notes if report.status != "unchanged" else ():
            print(f"  note: {note}", flush=True)

    with Catalog.open(settings.catalog_dir, create=False) as catalog:
        searcher = searcher_for(settings, catalog) if text else None
        photo_ids = select_photos(catalog, text, searcher, min_score=settings.search_min_score)
        writer = MetadataWriter(catalog, options, on_file=None if args.json else show,
                                stop=None if args.dry_run else install_stop())
        if args.dry_run:
            summary = writer.run(photo_ids)
        else:
            with catalog.writer(settings.lock_wait, task="write-metadata"):
                summary = writer.run(photo_ids)
    counts = summary.counts()
    if args.json:
        print_json({"run": summary.run_id, "dry_run": summary.dry_run, "interrupted": summary.interrupted,
                    "counts": counts, "files": [report.to_dict() for report in summary.files]},
                   indent=2)
    elif args.dry_run:
        say(f"dry run: {counts['would_write']} file(s) would be written, {counts['unchanged']} unchanged, "
            f"{counts['skipped']} skipped; nothing was changed")
    else:
        undo = f"; undo with: phototag undo-metadata {summary.run_id}" if summary.run_id else ""
        say(f"{'interrupted: ' if summary.interrupted else ''}wrote {counts['written']} file(s), "
            f"{counts['unchanged']} unchanged, {counts['skipped']} skipped{undo}")
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_PARTIAL if summary.skipped else EXIT_OK


def cmd_undo_metadata(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog
    from indexer.metadata.journal import list_runs, undo_run

    settings = settings_for(args)

    def show(report) -> None:  # noqa: ANN001
        if report.status == "skipped":
            say(f"skipped: {report.message}")
        elif report.status != "unchanged":
            print(f"{report.status.replace('_', ' ')} {report.path}", flush=True)

    with Catalog.open(settings.catalog_dir, create=False) as catalog:
        if args.list:
            runs = list_runs(catalog.directory)
            if args.json:
                print_json([{"run": r.id, "started_at": r.started_at, "options": r.options, "counts": r.counts,
                             "undone": r.undone} for r in runs], indent=2)
            elif not runs:
                say("no metadata runs in this catalog")
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
        print_json({"run": summary.run_id, "dry_run": summary.dry_run, "complete": summary.complete,
                    "counts": counts, "files": [vars(report) for report in summary.files]},
                   indent=2)
    else:
        done = ", ".join(f"{count} {status.replace('_', ' ')}" for status, count in counts.items()) or "nothing to do"
        more = "" if summary.complete else " (files changed since the run are kept: --force restores them anyway)"
        say(f"{'dry run: ' if summary.dry_run else ''}run {summary.run_id}: {done}{more}")
    return EXIT_OK if summary.complete else EXIT_PARTIAL
