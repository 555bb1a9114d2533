"""``phototag search``: find photos by tags, free text, example photos, date, place and camera."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from indexer.cli_common import (
    EXIT_ERROR,
    EXIT_OK,
    add_command,
    catalog_option,
    json_option,
    print_json,
    say,
    settings_for,
)

if TYPE_CHECKING:
    from indexer.catalog import Catalog
    from indexer.search.engine import Searcher
    from indexer.settings import Settings


def add_commands(commands: Any) -> None:  # noqa: ANN401
    p = add_command(commands, "search", "find photos by tags, free text, example photos, date, place and camera",
                    cmd_search, dashed_arguments=True)
    p.add_argument("query", nargs="*", metavar="QUERY",
                   help='e.g. tag:dog beach, "a dog on the beach", similar:IMG.jpg, date:2023 camera:sony, @saved')
    catalog_option(p)
    p.add_argument("--limit", type=_limit, default=50,
                   help="at most this many results (default 50; 0: every match, counted exactly)")
    p.add_argument("--min-score", type=float, metavar="S",
                   help="relevance cutoff for free-text and similar: terms (CLIP cosine; default 0.2)")
    p.add_argument("--sort", choices=("relevance", "date"), default="relevance")
    json_option(p, "one JSON object per result: path, score, tags, taken_at")
    p.add_argument("--save", metavar="NAME", help="save the query as @NAME instead of running it")
    p.add_argument("--list", action="store_true", help="list saved searches")
    p.add_argument("--delete", metavar="NAME", help="delete the saved search @NAME")
    p.add_argument("--embedder", help="embedder bundle for text and image queries (default: clip_vit_b16)")
    p.epilog = "Query language: see 'Search' in the README. Exit status 0, or 2 for a malformed query."


def _limit(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"give a number of results, or 0 for all of them, not {text}")
    return value


def searcher_for(settings: Settings, catalog: Catalog) -> Searcher:
    """A Searcher on ``catalog``'s embeddings whose CLIP embedder (the catalog's) loads only when a query has
    words, or ``similar:`` a photo the catalog has no embedding of."""
    from functools import cache

    from indexer.catalog_models import choose_models
    from indexer.search.engine import Searcher
    from ram_model.cli import load_embedder

    choice = cache(lambda: choose_models(catalog, settings, comparing=True))  # only a query with embeddings asks

    def load():  # noqa: ANN202
        return load_embedder(choice().settings, choice().settings.embedder)

    return Searcher(catalog, load, embedder_version=lambda: choice().embedder_version,
                    vector_index=settings.vector_index)


def cmd_search(args: argparse.Namespace) -> int:
    from indexer.catalog import Catalog

    settings = settings_for(args)
    text = " ".join(args.query)
    with Catalog.open(settings.catalog_dir, create=False) as catalog:
        searcher = searcher_for(settings, catalog)
        if args.list:
            for name, saved in searcher.saved().items():
                print(f"@{name}\t{saved}")
            return EXIT_OK
        if args.delete:
            searcher.delete_saved(args.delete)
            say(f"deleted the saved search @{args.delete}")
            return EXIT_OK
        if not text:
            say("phototag search: give a query, e.g. phototag search tag:dog beach (see the README)")
            return EXIT_ERROR
        if args.save:
            searcher.save(args.save, text)
            say(f"saved as @{args.save}: {text}")
            return EXIT_OK
        min_score = settings.search_min_score if args.min_score is None else args.min_score
        found = searcher.search(text, limit=args.limit or None, min_score=min_score, sort=args.sort)
    for result in found.results:
        if args.json:
            print_json({"path": result.path, "score": round(result.score, 4), "tags": result.tags,
                        "taken_at": result.taken_at.isoformat() if result.taken_at else None})
        else:
            tags = f"  [{', '.join(result.tags)}]" if result.tags else ""
            print(f"{result.score:.3f}  {result.path}{tags}")
    if not args.json:
        shown = len(found.results)
        more = f", {shown} shown" if shown < found.total else ""
        at_least = "at least " if found.total_is_lower_bound else ""
        say(f"{at_least}{found.total} match{'es' if found.total != 1 else ''}{more}")
    return EXIT_OK
