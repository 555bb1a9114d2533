"""The ``phototag`` command: a thin shell over the ram_model and indexer libraries.

Each command group is declared, options and handler together, beside the library code it calls:

* ``ram_model/cli.py``: ``models …``, ``tag-photo`` (and loading the models other commands use);
* ``indexer/cli.py``: ``index``, ``watch``, ``status``, ``failures``, ``tags``;
* ``indexer/personal/cli.py``: ``tag``, ``custom-tag …``, ``review``, ``finetune``;
* ``indexer/search/cli.py``: ``search``;
* ``indexer/metadata/cli.py``: ``write-metadata``, ``undo-metadata``;
* ``indexer/cli_common.py``: what they share (exit codes, output, settings, the common options).

Library code raises typed errors; this is the one place that turns them into a one-line message
and an exit code (0 success, 1 some input failed, 2 usage or fatal error, 130 interrupted).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import indexer.cli
import indexer.metadata.cli
import indexer.personal.cli
import indexer.search.cli
import ram_model.cli
from indexer.cli_common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    add_command,
    catalog_option,
    dashed_argv,
    device_options,
    say,
    settings_for,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phototag",
        description="Tag your photos with RAM++ (and RAM), search them, and write tags where other tools read them.",
        epilog="Settings come from flags, then PHOTOTAG_* environment variables (PHOTOTAG_HOME, PHOTOTAG_DEVICE, "
               "PHOTOTAG_TAGGER, ...), then defaults. Models live in $PHOTOTAG_HOME/models.",
    )
    parser.add_argument("--home", type=Path, help="Phototag's data folder (default: the platform's user data dir)")
    device_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ram_model.cli.add_commands(commands)
    indexer.cli.add_commands(commands)
    p = add_command(commands, "gui", "open the desktop app: browse, search and correct tags (FOLDER is added and "
                                     "indexed in the background)", cmd_gui)
    p.add_argument("folder", nargs="?", type=Path, metavar="FOLDER", help="a photo folder to add to the library")
    catalog_option(p)
    indexer.personal.cli.add_commands(commands)
    indexer.search.cli.add_commands(commands)
    indexer.metadata.cli.add_commands(commands)
    indexer.cli.add_tags_command(commands)  # last, where `phototag --help` has always listed it
    return parser


def cmd_gui(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    folder = None
    if args.folder is not None:
        folder = args.folder.expanduser()
        if not folder.is_dir():
            say(f"phototag gui: {folder} is not a folder: give a folder of photos (is the share mounted?)")
            return EXIT_ERROR
    from gui import run

    return run(str(folder) if folder is not None else None, settings)


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
    parser = build_parser()
    args = parser.parse_args(dashed_argv(parser, list(sys.argv[1:] if argv is None else argv)))
    try:
        return args.func(args)
    except PhototagError as exc:
        say(f"phototag: error: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        say("phototag: interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
