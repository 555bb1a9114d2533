"""``phototag tag``, ``custom-tag``, ``review`` and ``finetune``: what a person teaches Phototag."""

from __future__ import annotations

import argparse
from typing import Any

from indexer.cli_common import (
    EXIT_ERROR,
    EXIT_OK,
    add_command,
    catalog_option,
    existing_catalog,
    json_option,
    print_json,
    say,
    settings_for,
    wait_option,
)
from ram_model.cli import load_embedder

WAIT_HELP = "wait this long for another writer to finish"


def add_commands(commands: Any) -> None:  # noqa: ANN401
    p = add_command(commands, "tag",
                    "correct tags: +TAG accepts (or adds) a tag, -TAG rejects it, =TAG undoes a decision", cmd_tag,
                    dashed_arguments=True)
    p.add_argument("items", nargs="+", metavar="PHOTO|+TAG|-TAG|=TAG",
                   help="photo files, then edits; a rejected tag is never suggested again for that photo")
    catalog_option(p)
    json_option(p, "print the changes as JSON")
    wait_option(p, WAIT_HELP)

    custom = add_command(commands, "custom-tag",
                         "define your own tags by descriptions or example photos (scored with CLIP)")
    actions = custom.add_subparsers(dest="custom_command", required=True, metavar="ACTION")
    p = add_command(actions, "add", "define (or redefine) a custom tag and suggest it on the whole library",
                    cmd_custom_tag_add)
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
    wait_option(p, WAIT_HELP)
    p = add_command(actions, "list", "the custom tags, their definitions and how many photos carry them",
                    cmd_custom_tag_list)
    catalog_option(p)
    json_option(p)
    p = add_command(actions, "remove", "forget a custom tag and its suggestions (accepted ones stay as user tags)",
                    cmd_custom_tag_remove)
    p.add_argument("name", metavar="NAME")
    catalog_option(p)
    wait_option(p, WAIT_HELP)
    p = add_command(actions, "apply", "score custom tags (all, or NAME) on every photo again", cmd_custom_tag_apply)
    p.add_argument("name", nargs="?", metavar="NAME")
    catalog_option(p)
    wait_option(p, WAIT_HELP)

    p = add_command(commands, "review",
                    "the suggestions most worth a look: nearest their threshold, often-corrected tags first",
                    cmd_review)
    catalog_option(p)
    p.add_argument("--tag", metavar="T", help="only this tag")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    json_option(p)

    p = add_command(commands, "finetune", "learn from your corrections; activate the result only if it does better",
                    cmd_finetune)
    catalog_option(p)
    action = p.add_mutually_exclusive_group()
    action.add_argument("--dry-run", action="store_true", help="train and evaluate; store and activate nothing")
    action.add_argument("--status", action="store_true", help="the active and latest personal models' numbers")
    action.add_argument("--rollback", action="store_true", help="re-activate the previous personal model (or none)")
    action.add_argument("--apply", action="store_true", help="apply the active personal model to the whole library")
    json_option(p)
    wait_option(p, WAIT_HELP)


def cmd_tag(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog
    from indexer.personal.corrections import apply_edits, photo_ids_for

    settings = settings_for(args)
    edits = [item for item in args.items if item[:1] in "+-=" and len(item) > 1]
    paths = [item for item in args.items if item not in edits]
    if not edits or not paths:
        say("phototag tag: give photos and edits, e.g. phototag tag IMG_1.jpg IMG_2.jpg +dog -cat "
            "(+ accept or add, - reject, = undo a decision)")
        return EXIT_ERROR
    with Catalog.open(settings.catalog_dir, create=False) as catalog, \
            catalog.writer(settings.lock_wait, task="tag"):
        changes = apply_edits(catalog, photo_ids_for(catalog, paths), edits)
    if args.json:
        print_json([{"photo_id": c.photo_id, "tag": c.tag, "before": c.before, "after": c.after}
                    for c in changes])
    else:
        say(f"{len(changes)} change(s) on {len(paths)} photo(s)" if changes else "nothing to change")
    return EXIT_OK


# --- phototag custom-tag / review / finetune ---------------------------------------------------
def cmd_custom_tag_add(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog
    from indexer.catalog_models import choose_models
    from indexer.personal import custom_tags
    from indexer.personal.corrections import photo_ids_for

    settings = settings_for(args)
    with Catalog.open(settings.catalog_dir, create=False) as catalog:
        settings = choose_models(catalog, settings, comparing=True).settings
        embedder = load_embedder(settings, settings.embedder) if args.description else None
        examples = photo_ids_for(catalog, args.example)
        tag = custom_tags.build(catalog, args.name, args.description, examples, text_embedder=embedder,
                                threshold=args.threshold)
        if args.dry_run:
            found = custom_tags.matches(catalog, tag)
            for path, score in found[: args.limit]:
                print(f"{score:.3f}  {path}")
            say(f"dry run: {tag.name} (threshold {tag.threshold:.2f}) would be suggested on {len(found)} photo(s)")
            return EXIT_OK
        with catalog.writer(settings.lock_wait, task="custom-tag"):
            custom_tags.save(catalog, tag)
            counts = custom_tags.apply(catalog, [tag.name], text_embedder=embedder)
    say(f"custom tag {tag.name} (threshold {tag.threshold:.2f}): suggested on {counts[tag.name]} photo(s)")
    return EXIT_OK


def cmd_custom_tag_list(args: argparse.Namespace) -> int:
    from indexer.personal.custom_tags import list_custom

    with existing_catalog(args) as catalog:
        tags = list_custom(catalog)
    if args.json:
        print_json(tags, indent=2)
        return EXIT_OK
    if not tags:
        say("no custom tags: define one with phototag custom-tag add NAME --description TEXT")
    for tag in tags:
        defined = [f'"{d}"' for d in tag["descriptions"]] + [str(p) for p in tag["example_paths"]]
        print(f"{tag['name']}\tthreshold {tag['threshold']:.2f}\t{tag['photos']} photo(s)\t{'; '.join(defined)}")
    return EXIT_OK


def cmd_custom_tag_remove(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog
    from indexer.personal.custom_tags import remove

    settings = settings_for(args)
    with Catalog.open(settings.catalog_dir, create=False) as catalog, \
            catalog.writer(settings.lock_wait, task="custom-tag"):
        counts = remove(catalog, args.name)
    say(f"removed {args.name}: {counts['suggestions_removed']} suggestion(s) gone, "
        f"{counts['accepted_kept']} accepted kept as user tags")
    return EXIT_OK


def cmd_custom_tag_apply(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog
    from indexer.catalog_models import choose_models
    from indexer.personal import custom_tags, finetune

    settings = settings_for(args)
    with Catalog.open(settings.catalog_dir, create=False) as catalog, \
            catalog.writer(settings.lock_wait, task="custom-tag"):
        with catalog.session() as session:
            tags = custom_tags.load_all(session, [args.name] if args.name else None)
            version = custom_tags.catalog_embedder_version(session)
            active = finetune.active_model_id(session)
        stale = any(t.descriptions and t.embedder_version != version for t in tags)
        settings = choose_models(catalog, settings, comparing=True).settings if stale else settings
        embedder = load_embedder(settings, settings.embedder) if stale else None
        counts = custom_tags.apply(catalog, [t.name for t in tags], text_embedder=embedder)
        if active is not None:  # custom scores reset its tags to the base state: apply the personal model again
            finetune.apply_active(catalog)
    for name, count in counts.items():
        print(f"{name}\t{count} photo(s)")
    return EXIT_OK


def cmd_review(args: argparse.Namespace) -> int:
    from indexer.personal.review import review_queue

    with existing_catalog(args) as catalog:
        items = review_queue(catalog, tag=args.tag, limit=args.limit)
    if args.json:
        print_json([item.to_dict() for item in items], indent=2)
        return EXIT_OK
    for item in items:
        print(f"{item.priority:.3f}  {item.tag} ({item.score:.2f}, threshold {item.threshold:.2f})  {item.path}")
    say(f"{len(items)} suggestion(s) to review: accept with phototag tag PHOTO +TAG, reject with -TAG"
        if items else "nothing to review")
    return EXIT_OK


def _print_finetune_report(report: dict) -> None:
    for tag in report["tags"]:
        before, after = tag["before"], tag["after"]
        print(f"{tag['tag']}\t{tag['positives']}+/{tag['negatives']}-\t{tag['method']}\t"
              f"P {before['precision']:.2f}->{after['precision']:.2f}  R {before['recall']:.2f}->{after['recall']:.2f}"
              f"  F1 {before['f1']:.2f}->{after['f1']:.2f}  macro-F1 {before['macro_f1']:.2f}->"
              f"{after['macro_f1']:.2f} ({tag['gain']:+.3f})")
    say(report["reason"])


def cmd_finetune(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog
    from indexer.personal import finetune

    settings = settings_for(args)
    with Catalog.open(settings.catalog_dir, create=False) as catalog:
        if args.status:
            found = finetune.versions(catalog)
            active = [v for v in found if v["active"]]
            shown = {v["id"]: v for v in active + found[-1:]}
            if args.json:
                print_json(list(shown.values()), indent=2)
                return EXIT_OK
            if not found:
                say("no personal model yet: run phototag finetune")
            for version in shown.values():
                state = "active" if version["active"] else ("accepted" if version["accepted"] else "not activated")
                print(f"personal model {version['id']} ({version['created_at']}, {state}, "
                      f"{version['corrections']} corrections)")
                _print_finetune_report(version["report"])
            if found and not active:
                say("no personal model is active: the base models' suggestions apply")
            return EXIT_OK
        if args.dry_run:
            result = finetune.train(catalog, dry_run=True)
        else:
            with catalog.writer(settings.lock_wait, task="finetune"):
                if args.rollback:
                    previous = finetune.rollback(catalog)
                    say(f"rolled back: personal model {previous} is active" if previous is not None
                        else "rolled back: no personal model is active; the base models' suggestions are back")
                    return EXIT_OK
                if args.apply:
                    counts = finetune.apply_active(catalog)
                    say(f"applied to {counts['photos']} photo(s): {counts['added']} suggestion(s) added, "
                        f"{counts['withheld']} withheld")
                    return EXIT_OK
                result = finetune.train(catalog)
    if args.json:
        print_json({"model_id": result.model_id, "activated": result.activated} | result.report, indent=2)
    else:
        _print_finetune_report(result.report)
        if result.activated:
            say(f"personal model {result.model_id} is active for new photos; apply it to the library with "
                "phototag finetune --apply")
        elif args.dry_run:
            say("dry run: nothing stored")
    return EXIT_OK
