"""The man pages: generated from the click definitions, checked in up to date, rendered by man."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from evtools import __version__
from evtools.cli import main as cli_main
from tools.manpages import MANUAL_DATE, command_contexts, escape, page_name, pages

REPO = Path(__file__).resolve().parents[2]
MAN_DIR = REPO / "man"
STALE = "man/ is out of date with the click definitions: run `make man completions` and commit"


def _man(page: Path | str) -> str:
    """Render ``page`` with ``man -l`` as a reader would see it; fail if man is missing."""
    if shutil.which("man") is None:
        pytest.fail("man is not installed: `make system-deps` installs man-db", pytrace=False)
    env = {**os.environ, "MANPAGER": "cat", "MANWIDTH": "100"}
    result = subprocess.run(["man", "-P", "cat", "-l", str(page)], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _options(ctx: click.Context) -> list[click.Option]:
    return [param for param in ctx.command.get_params(ctx)
            if isinstance(param, click.Option) and not param.hidden]


def test_checked_in_pages_are_the_generated_ones() -> None:
    checked_in = {path.name: path.read_text(encoding="utf-8") for path in MAN_DIR.glob("*.1")}
    generated = pages()
    assert sorted(checked_in) == sorted(generated), STALE
    stale = [name for name in generated if checked_in[name] != generated[name]]
    assert not stale, f"{STALE} (differing: {', '.join(stale)})"


def test_one_page_for_the_group_and_one_per_subcommand() -> None:
    ctx = click.Context(cli_main, info_name="evtools")
    subcommands = [name for name in cli_main.list_commands(ctx)
                   if not cli_main.commands[name].hidden]
    assert {"events", "demo"} <= set(subcommands)
    assert sorted(pages()) == sorted(["evtools.1", *(f"evtools-{name}.1" for name in subcommands)])


def test_every_option_of_every_command_is_in_its_page() -> None:
    generated = pages()
    for ctx in command_contexts():
        source = generated[f"{page_name(ctx)}.1"]
        rendered = _man(MAN_DIR / f"{page_name(ctx)}.1")
        for option in _options(ctx):
            for flag in (*option.opts, *option.secondary_opts):
                assert f"\\fB{escape(flag)}\\fR" in source, (ctx.command_path, flag)
            spec, help_text = option.get_help_record(ctx) or ("", "")
            assert spec in rendered, (ctx.command_path, spec)
            words = " ".join(help_text.split()[:4])
            assert words in " ".join(rendered.split()), (ctx.command_path, spec)


def test_events_page_renders_with_man() -> None:
    text = _man(MAN_DIR / "evtools-events.1")
    assert "--dump" in text and "--detach" in text
    assert text.startswith("EVTOOLS-EVENTS(1)")
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT",
                    "SEE ALSO"):
        assert re.search(rf"^{heading}$", text, re.M), heading
    assert re.search(rf"evtools {re.escape(__version__)} +{MANUAL_DATE} +EVTOOLS-EVENTS\(1\)", text)


def test_events_page_documents_environment_and_exit_status() -> None:
    text = " ".join(_man(MAN_DIR / "evtools-events.1").split())
    environment = text.partition(" ENVIRONMENT ")[2].partition(" SEE ALSO ")[0]
    for var in ("EVTOOLS_BROKER_URL", "CELERY_BROKER_URL", "EVTOOLS_FS_BROKER", "XDG_DATA_HOME"):
        assert var in environment
    assert "~/.local/share/evtools/broker" in environment
    exit_status = text.partition(" EXIT STATUS ")[2].partition(" ENVIRONMENT ")[0]
    assert re.search(r"\b0 Success\..*SIGTERM.*\b1 A broker error.*\b2 A usage or configuration",
                     exit_status)
    assert re.search(r"SEE ALSO evtools\(1\), (evtools-\w+\(1\), )*evtools-demo\(1\)", text)


def test_see_also_lists_every_other_page() -> None:
    for filename, source in pages().items():
        see_also = source.partition('.SH "SEE ALSO"\n')[2]
        named = re.findall(r"^\.BR (\S+) \(1\),?$", see_also, re.M)
        others = [name.removesuffix(".1") for name in pages() if name != filename]
        assert [name.replace("\\-", "-") for name in named] == others


def test_no_rewrap_paragraphs_are_preformatted() -> None:
    source = pages()["evtools-events.1"]
    assert ".nf\nExamples:\n  evtools events \\-\\-dump | grep task\\-failed\n" in source
    rendered = _man(MAN_DIR / "evtools-events.1").splitlines()
    examples = next(i for i, line in enumerate(rendered) if line.strip() == "Examples:")
    indent = len(rendered[examples]) - len(rendered[examples].lstrip())
    assert rendered[examples + 1] == " " * (indent + 2) + "evtools events --dump | grep task-failed"
    assert "evtools events --dump --json -t 'task-*' > incident.jsonl" in rendered[examples + 2]


@pytest.mark.parametrize("name", sorted(pages()))
def test_groff_finds_nothing_to_warn_about(name: str) -> None:
    if shutil.which("groff") is None:
        pytest.fail("groff is not installed (man-db brings groff-base)", pytrace=False)
    result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(MAN_DIR / name)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_escape() -> None:
    assert escape(".starts a request") == "\\&.starts a request"
    assert escape("'quoted' `x` \"y\"") == "\\(aqquoted\\(aq \\(gax\\(ga \\(dqy\\(dq"
    assert escape("C:\\dir --flag") == "C:\\edir \\-\\-flag"
    assert escape("caf\u00e9 \u2192") == "caf\\[u00E9] \\[u2192]"
    assert escape("bell\a del\x7f") == "bell del"


def _tool() -> click.Group:
    """A group with tricky help, a nested group and a hidden command: what a later one might add."""

    @click.group()
    def tool() -> None:
        """A tool.

        .starts with a dot, 'starts with a quote
        C:\\back\\slash "double" -dash

        \b
        .TH preformatted line
          'indented quote
        """

    @tool.group()
    def control() -> None:
        """Control workers."""

    @control.command()
    @click.option("--timeout/--no-timeout", default=True, show_default=True, help="Wait.")
    @click.argument("destination", nargs=-1)
    def ping(timeout: bool, destination: tuple[str, ...]) -> None:
        """Ping workers.\f

        Not for users.
        """

    @tool.command(hidden=True)
    def secret() -> None:
        """Hidden."""

    return tool


def test_subcommands_are_picked_up_and_text_is_escaped(tmp_path: Path) -> None:
    generated = pages(_tool(), prog_name="tool", date="2000-01-02", version="9.9")
    assert sorted(generated) == ["tool-control-ping.1", "tool-control.1", "tool.1"]
    ping = generated["tool-control-ping.1"]
    assert '.TH "TOOL\\-CONTROL\\-PING" 1 "2000\\-01\\-02" "evtools 9.9"' in ping
    assert "\\fB\\-\\-timeout\\fR / \\fB\\-\\-no\\-timeout\\fR" in ping
    assert "Not for users" not in ping
    assert "\\fBtool control ping\\fR [\\fIOPTIONS\\fR] [\\fIDESTINATION\\fR]..." in ping
    for name, source in generated.items():
        (tmp_path / name).write_text(source)
    text = _man(tmp_path / "tool.1")
    assert ".starts with a dot, 'starts with a quote" in text
    assert 'C:\\back\\slash "double" -dash' in text
    assert re.search(r"^ +\.TH preformatted line\n +  'indented quote$", text, re.M)
    assert "control Control workers. See tool-control(1)." in " ".join(text.split())
    if shutil.which("groff") is not None:
        for name in generated:
            result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(tmp_path / name)],
                                    capture_output=True, text=True, timeout=60)
            assert result.stderr == "", (name, result.stderr)


def test_output_is_reproducible() -> None:
    assert pages() == pages()
    assert all(f'1 "{escape(MANUAL_DATE)}" "evtools {__version__}"' in source
               for source in pages().values())


def test_python_m_evtools_manpages_writes_the_pages(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "tools.manpages", str(tmp_path / "out")], check=True,
                   capture_output=True, timeout=120)
    written = {path.name: path.read_text() for path in (tmp_path / "out").iterdir()}
    assert written == pages()
