"""What every ``phototag`` command shares: exit codes, output, settings from flags, and the common options.

Each command group lives beside the library code it calls (``ram_model/cli.py``, ``indexer/cli.py``,
``indexer/search/cli.py``, ``indexer/metadata/cli.py``, ``indexer/personal/cli.py``) and exposes
``add_commands(commands)``; ``main.py`` builds the parser from them and is the one error boundary.
Handlers import heavy libraries inside themselves, so ``phototag --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from indexer.catalog import Catalog
    from indexer.settings import Settings

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130

Handler = Callable[[argparse.Namespace], int]

WAIT_HELP = "if another Phototag process is writing this catalog, wait this long (default: exit)"


# --- output ----------------------------------------------------------------------------------------
def say(message: str) -> None:
    """A message for the person at the terminal (stderr), after whatever results were printed before it."""
    sys.stdout.flush()  # keep results and messages in order on a terminal
    print(message, file=sys.stderr, flush=True)


def print_json(data: object, **options: Any) -> None:
    """``data`` as JSON on stdout: a file name that is not valid UTF-8 keeps its bytes as surrogate escapes."""
    from indexer._paths import json_text

    print(json_text(json.dumps(data, ensure_ascii=False, **options)), flush=True)


# --- settings and stopping ------------------------------------------------------------------------
def settings_for(args: argparse.Namespace) -> Settings:
    """The settings: these flags (those the command has), then PHOTOTAG_* variables, then defaults."""
    from indexer.settings import load_settings

    return load_settings(
        home=args.home, device=args.device, precision=args.precision,
        tagger=getattr(args, "tagger", None), batch_size=getattr(args, "batch_size", None),
        chunk_size=getattr(args, "chunk_size", None), embedder=getattr(args, "embedder", None),
        catalog=getattr(args, "catalog", None), workers=getattr(args, "workers", None),
        lock_wait=getattr(args, "wait", None), compile=getattr(args, "compile", None),
        gpu_decode=getattr(args, "gpu_decode", None), engine=getattr(args, "engine", None),
        ray_address=getattr(args, "ray_address", None), ray_nodes=dict(getattr(args, "ray_nodes", None) or {}) or None,
    )


def existing_catalog(args: argparse.Namespace) -> Catalog:
    """The catalog these flags name, opened to read (never created: a command that only reads it fails on a
    library not indexed yet, instead of leaving an empty catalog behind)."""
    from indexer.catalog import Catalog

    return Catalog.open(settings_for(args).catalog_dir, create=False)


def install_stop() -> threading.Event:
    """First Ctrl-C: finish the current batch and stop cleanly. Second: stop now."""
    import signal

    stop = threading.Event()

    def handler(_signum, _frame) -> None:  # noqa: ANN001
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        say("phototag: stopping after the current batch (Ctrl-C again to stop at once)")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
    return stop


# --- declaring commands and their common options -----------------------------------------------------
_DASHED: weakref.WeakSet[argparse.ArgumentParser] = weakref.WeakSet()  # see add_command's dashed_arguments


def add_command(commands: Any, name: str, text: str, handler: Handler | None = None,  # noqa: ANN401
                *, dashed_arguments: bool = False) -> argparse.ArgumentParser:
    """A command (or an action of one) named ``name``, ``text`` its one-line help, run by ``handler``.

    ``dashed_arguments``: its free arguments may start with '-' (a query's ``-tag:cat``, a correction's
    ``-cat``); see :func:`dashed_argv`."""
    parser = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
    if handler is not None:
        parser.set_defaults(func=handler)
    if dashed_arguments:
        _DASHED.add(parser)
    return parser


def catalog_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalog", type=Path, help="catalog folder (default: $PHOTOTAG_HOME/catalog)")


def json_option(parser: argparse.ArgumentParser, text: str | None = None) -> None:
    parser.add_argument("--json", action="store_true", help=text)


def wait_option(parser: argparse.ArgumentParser, text: str = WAIT_HELP) -> None:
    parser.add_argument("--wait", type=float, metavar="SECONDS", help=text)


def device_options(parser: argparse.ArgumentParser, *, on_command: bool = False) -> None:
    """``--device`` and ``--precision``: before any command, and again after a command that loads models
    (``on_command``), where they default to SUPPRESS so ``phototag --device cpu index`` keeps its value."""
    default = argparse.SUPPRESS if on_command else None
    parser.add_argument("--device", default=default, help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--precision", default=default,
                        help="auto (default), fp32, bf16, fp16" if on_command
                        else "auto (default: fp16 on GPUs, fp32 on most CPUs), fp32, bf16, fp16")


# --- free arguments that start with '-' ---------------------------------------------------------------
def dashed_argv(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Let a search query contain ``-tag:cat`` or ``-"fog"`` (and ``phototag tag`` a ``-cat``): everything
    after such a command that is not one of its options goes after a ``--``, so argparse does not take it
    for an unknown option. The options are read from the command's own parser."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    dashed = {name: sub for name, sub in commands.choices.items() if sub in _DASHED}
    command = next((a for a in argv if a in dashed), None)
    if command is None or "--" in argv:
        return argv
    actions = dashed[command]._actions
    with_value = {s for a in actions if a.nargs != 0 for s in a.option_strings}
    flags = {s for a in actions if a.nargs == 0 for s in a.option_strings}
    at = argv.index(command) + 1
    options: list[str] = []
    query: list[str] = []
    rest = argv[at:]
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
