"""Shell completion scripts for ``evtools``: click's own, as ``_EVTOOLS_COMPLETE=bash_source``.

``python -m tools.completions OUTDIR`` writes ``evtools.bash``, ``_evtools`` (zsh) and
``evtools.fish`` (``make completions`` regenerates the checked-in ones under ``completions/``).
The scripts only call ``evtools`` back with ``_EVTOOLS_COMPLETE=<shell>_complete``, so they
complete whatever subcommands and options the installed evtools has.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import click
from click.shell_completion import ShellComplete, get_completion_class

from evtools.cli import main as cli_main

__all__ = ("PROG_NAME", "COMPLETE_VAR", "SCRIPT_NAMES", "completion_script", "write_scripts",
           "main")

PROG_NAME = "evtools"
#: The variable click derives from the program name (``_<PROG>_COMPLETE``).
COMPLETE_VAR = "_EVTOOLS_COMPLETE"
#: The file name of each shell's script, as each shell looks it up.
SCRIPT_NAMES: Mapping[str, str] = MappingProxyType({
    "bash": "evtools.bash",
    "zsh": "_evtools",
    "fish": "evtools.fish",
})


def completion_script(shell: str, cli: click.Command = cli_main, prog_name: str = PROG_NAME,
                      complete_var: str = COMPLETE_VAR) -> str:
    """Return the completion script for ``shell`` (bash, zsh or fish), as click sources it."""
    comp_cls = get_completion_class(shell)
    if comp_cls is None:
        raise ValueError(f"click has no completion for shell {shell!r}")
    completer = comp_cls(cli, {}, prog_name, complete_var)
    # Not completer.source(): for bash that first checks the version of the bash installed on
    # the machine generating the script, which says nothing about the user's bash.
    return ShellComplete.source(completer)


def write_scripts(outdir: Path, cli: click.Command = cli_main) -> list[Path]:
    """Write the script of every shell in :data:`SCRIPT_NAMES` into ``outdir``; return the paths."""
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for shell, filename in SCRIPT_NAMES.items():
        path = outdir / filename
        path.write_text(completion_script(shell, cli), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.completions OUTDIR``: write the completion scripts into OUTDIR."""
    parser = argparse.ArgumentParser(prog="python -m tools.completions",
                                     description="Write evtools' bash, zsh and fish completion "
                                                 "scripts into OUTDIR.")
    parser.add_argument("outdir", metavar="OUTDIR", type=Path)
    args = parser.parse_args(argv)
    for path in write_scripts(args.outdir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
