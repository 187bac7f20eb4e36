"""Command-line entry point: ``tetune <command> ...``.

Every command from DESIGN.md is registered here; the ones whose machinery has not landed
yet say so on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from typing import Sequence

from . import net_cmd, tune_cmd

# command -> (one-line help, the package that will implement it)
_PLANNED: dict[str, tuple[str, str]] = {}


def _version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cmd_version(args: argparse.Namespace) -> int:
    import numba
    import numpy

    print(f"tetune {_version('tetune')}")
    print(f"python {platform.python_version()} ({sys.executable})")
    print(f"numpy {numpy.__version__}")
    print(f"numba {numba.__version__}")
    return 0


def _not_implemented(command: str, owner: str) -> int:
    print(
        f"tetune {command}: not implemented yet (see issue tracker; will live in {owner})",
        file=sys.stderr,
    )
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tetune",
        description="TVM-style tensor-expression compiler and autotuner (numba codegen).",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")

    p = sub.add_parser("version", help="print tetune, python, numpy and numba versions")
    p.set_defaults(func=_cmd_version)

    tune_cmd.add_tune_parser(sub)
    tune_cmd.add_log_parser(sub)
    net_cmd.add_net_parsers(sub)  # compile, run, bench, tune-net

    for name, (help_text, owner) in _PLANNED.items():
        p = sub.add_parser(
            name,
            help=f"{help_text} [not implemented yet]",
            description=f"{help_text}. Not implemented yet.",
        )
        p.set_defaults(func=lambda args, _n=name, _o=owner: _not_implemented(_n, _o))
        p.set_defaults(_accepts_extra=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if extra and not getattr(args, "_accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # whoever read our output stopped early (`tetune log show LOG | head`): that is no
        # failure; stdout goes to /dev/null so the interpreter's last flush stays quiet
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
