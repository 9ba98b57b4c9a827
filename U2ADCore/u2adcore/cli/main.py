"""`u2ad`: one subcommand per module in this package.

Each subcommand module defines `add_parser(subparsers)` (returning its parser) and
`run(args) -> int`. Modules are imported only when their subcommand runs, so `u2ad inspect`
does not pay for importing torch.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from typing import Optional, Sequence

from .. import __version__
from ..errors import Cancelled, U2ADError

# name -> (module, one-line help). Order is the order shown in `u2ad --help`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "inspect": ("inspect_cmd", "print orientation, spacing, cord extent, slices and levels of a study"),
    "phantom": ("phantom_cmd", "write synthetic T2w cervical spine studies (optionally with lesions)"),
    "pretrain": ("pretrain_cmd", "pretrain EdgeMAE on healthy studies"),
    "adapt": ("adapt_cmd", "uncertainty-guided adaptation to target studies"),
    "segment-cord": ("segment_cord_cmd", "segment the spinal cord with the shipped model (offline)"),
    "detect": ("detect_cmd", "detect T2 hyperintensity in a study or a manifest"),
    "calibrate": ("calibrate_cmd", "store decision thresholds in a checkpoint"),
    "evaluate": ("evaluate_cmd", "the paper's 5-fold evaluation protocol"),
    "demo": ("demo_cmd", "run detection with the shipped model on the shipped real sample (or --study phantom)"),
}


def _available() -> dict[str, tuple[str, str]]:
    found = {}
    for name, (module, help_) in SUBCOMMANDS.items():
        if importlib.util.find_spec(f"{__package__}.{module}") is not None:
            found[name] = (module, help_)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="u2ad", description="U2AD: find T2 hyperintensities in the spinal cord.")
    parser.add_argument("--version", action="version", version=f"u2ad {__version__}")
    parser.add_argument(
        "--progress",
        choices=("bar", "jsonl", "none"),
        default="bar",
        help="progress display: a terminal bar (stderr), JSON lines on stdout (the Slicer worker protocol), or none",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in _available().items():
        mod = importlib.import_module(f"{__package__}.{module}")
        p = mod.add_parser(sub, name, help_)
        p.set_defaults(_module=module)
    return parser


def progress_callback(args: argparse.Namespace):
    """The callback chosen by `--progress`."""
    from ..progress import JsonLinesProgress, TerminalProgress

    return {"bar": TerminalProgress, "jsonl": JsonLinesProgress}.get(args.progress, lambda: None)()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    return _dispatch(parser, parser.parse_args(argv))


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run the parsed subcommand; errors and cancellation become exit statuses."""
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    mod = importlib.import_module(f"{__package__}.{args._module}")
    jsonl = args.progress == "jsonl"
    try:
        return int(mod.run(args) or 0)
    except Cancelled as exc:
        _report("cancelled", str(exc), jsonl)
        return 130
    except (U2ADError, FileNotFoundError) as exc:
        _report("error", str(exc), jsonl)
        return 2
    except KeyboardInterrupt:
        _report("cancelled", "interrupted", jsonl)
        return 130


FAST_EXIT_COMMANDS = ("detect", "demo")  # they only leave finished, closed files behind


def entry() -> None:
    """The `u2ad` console script and `python -m u2adcore`: main(), then, after a command in
    FAST_EXIT_COMMANDS, leave without the interpreter's teardown, which costs about 0.4 s once
    torch is loaded (docs/DETECTION.md, "Speed"). Every output is written atomically and closed by
    then; only the standard streams and logging still need flushing."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:])
    rc = _dispatch(parser, args)
    if getattr(args, "command", None) not in FAST_EXIT_COMMANDS:
        sys.exit(rc)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def _report(event: str, message: str, jsonl: bool) -> None:
    if jsonl:
        print(json.dumps({"event": event, "message": message}), flush=True)
    else:
        print(f"u2ad: {message}" if event == "error" else f"u2ad: {event}: {message}", file=sys.stderr)


if __name__ == "__main__":
    entry()
