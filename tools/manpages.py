"""Man pages for ``evtools`` and each of its subcommands, generated from the click definitions.

``python -m tools.manpages OUTDIR`` writes ``evtools.1`` and one ``evtools-<command>.1`` per
subcommand (``make man`` regenerates the checked-in pages under ``man/``).  Subcommands are found
by walking the click group, so a new one gets its page without any change here; sections click
knows nothing about (ENVIRONMENT, EXIT STATUS) come from :data:`EXTRA_SECTIONS`.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import click

from evtools import __version__
from evtools.cli import main as cli_main

__all__ = ("MANUAL_DATE", "SECTION", "Section", "EXTRA_SECTIONS", "escape", "page_name",
           "render_page", "command_contexts", "pages", "write_pages", "main")

#: The date printed on every page.  Fixed, so the output is reproducible: it is the release date
#: of ``evtools.__version__`` and changes together with it.
MANUAL_DATE = "2026-11-25"
SECTION = "1"
MANUAL = "User Commands"

#: Characters roff would interpret, and what stands for each of them.
_ESCAPES = MappingProxyType({
    "\\": r"\e",
    "-": r"\-",     # a minus, not a hyphen: what users type for options, and searchable in a pager
    "'": r"\(aq",   # groff may typeset a bare ' or ` as a curly quote, breaking copy and paste
    "`": r"\(ga",
    '"': r"\(dq",   # a quote would end a macro argument
})

#: The start of a word holding a dash, slash, underscore, $ or @ (an option, a path, a URL, a
#: variable): such words are not hyphenated, so what the reader copies is what they type.
_NO_HYPHENATION = re.compile(r"(?<!\S)(?=\S*(?:\\-|[/_$@]))")
#: The placeholders in a usage line (OPTIONS, COMMAND, ARGS).
_PLACEHOLDER = re.compile(r"([A-Z][A-Z0-9_]*)")
_OPTION_SEPARATORS = (", ", " / ", " ")
_NO_REWRAP = "\b"


@dataclass(frozen=True)
class Section:
    """A hand-written section: an introduction, then a list of tagged paragraphs."""

    title: str
    intro: str = ""
    items: tuple[tuple[str, str], ...] = ()


_EXIT_STATUS = Section("EXIT STATUS", items=(
    ("0", "Success. A run stopped with Ctrl-C (SIGINT) or SIGTERM, or whose standard output was "
          "closed (evtools events --dump | head), also ends with 0."),
    ("1", "A broker error: a malformed broker URL, an unknown transport, a missing client "
          "library (redis), or a broker that cannot be reached."),
    ("2", "A usage or configuration error: an unknown or invalid option or value, options that "
          "do not go together (--json without --dump), a -A app that cannot be imported, or "
          "settings that cannot work together."),
))

_FS_BROKER_VARS = (
    ("EVTOOLS_FS_BROKER", "The folder of the embedded filesystem:// broker, instead of "
                          "$XDG_DATA_HOME/evtools/broker; evtools demo and evtools events meet "
                          "only if they see the same folder. Its queue, control and leases "
                          "subfolders are created when missing. Empty means unset."),
    ("XDG_DATA_HOME", "The base of the embedded broker's default folder, "
                      "$XDG_DATA_HOME/evtools/broker; when unset or empty, "
                      "~/.local/share/evtools/broker."),
)

_BROKER_VARS = (
    ("EVTOOLS_BROKER_URL", "The broker URL when -b/--broker is given neither to evtools nor to "
                           "the subcommand. It takes precedence over CELERY_BROKER_URL and over "
                           "the broker_url of the -A app. Empty means unset."),
    ("CELERY_BROKER_URL", "Celery's variable, read when EVTOOLS_BROKER_URL is unset or empty; it "
                          "too takes precedence over the -A app's broker_url. With no -b, no "
                          "variable and no app, the broker is "
                          "amqp://guest:guest@localhost:5672//."),
)

_CONTROL_EXIT_STATUS = Section("EXIT STATUS", items=(
    ("0", "Every worker that replied answered OK; for heartbeat, which workers do not answer, "
          "the command was sent."),
    ("1", "No worker replied within --timeout (Error: No nodes replied within time constraint, "
          "as celery control says it), a worker replied with an error (ERROR in its line), or "
          "a broker error: a malformed broker URL, an unknown transport, a missing client "
          "library (redis), or a broker that cannot be reached."),
    ("2", "A usage or configuration error: an unknown command, missing or extra arguments, "
          "an empty task id, a rate that is not like 10/s, 10/m or 10/h, an unknown signal, "
          "--terminate or --signal with another command than revoke, or a -A app that cannot "
          "be imported."),
))


def _camera_items() -> tuple[tuple[str, str], ...]:
    """One entry per shipped camera and per option of each, from the classes themselves."""
    from evtools.cameras import JSONLinesCamera, SQLiteCamera
    items = []
    for camera in (JSONLinesCamera, SQLiteCamera):
        summary = " ".join(inspect.getdoc(camera).split("\n\n")[0].split())
        items.append((f"evtools.cameras.{camera.__name__}", summary))
        for name, (default, text) in camera.options_doc.items():
            shown = "required" if default is None else f"default {default}"
            items.append((f"  {name}=VALUE", f"({shown}) {text}"))
    return tuple(items)


_CAMERAS = Section(
    "CAMERAS",
    intro="--camera takes any subclass of evtools.snapshot.Polaroid. Options for a camera come "
          "from --camera-opt KEY=VALUE (repeatable) or from the environment variable "
          "EVTOOLS_CAMERA_<KEY>; the command line wins. The cameras that ship with evtools:",
    items=_camera_items())

_DAEMON = Section(
    "DAEMON",
    intro="With --detach the camera runs as a daemon (double fork, new session, standard streams "
          "to /dev/null or the --logfile, working directory --workdir or /, file creation mask "
          "--umask or 0). The command returns only once the daemon runs: status 0, or non-zero "
          "with the reason when it could not start. --pidfile is locked for the daemon's life: "
          "a second start is refused naming the running pid; a pidfile left by a process that "
          "died is reclaimed; the file is removed on a clean exit. The pidfile and log file are "
          "given to --uid/--gid before privileges are dropped. SIGTERM takes a last snapshot and "
          "exits; SIGHUP reopens the log file and the camera's files (logrotate).")

#: Sections beyond what click describes, by page name (a new subcommand gets none until added).
EXTRA_SECTIONS: Mapping[str, tuple[Section, ...]] = MappingProxyType({
    "evtools": (
        _EXIT_STATUS,
        Section("ENVIRONMENT", intro="evtools events and evtools control read all four; "
                                     "evtools demo only EVTOOLS_FS_BROKER and XDG_DATA_HOME.",
                items=_BROKER_VARS + _FS_BROKER_VARS),
    ),
    "evtools-events": (
        _CAMERAS,
        _DAEMON,
        _EXIT_STATUS,
        Section("ENVIRONMENT", items=_BROKER_VARS + _FS_BROKER_VARS + (
            ("EVTOOLS_CAMERA_<KEY>", "An option of the --camera camera, as --camera-opt "
                                     "KEY=VALUE would give it (see CAMERAS)."),)),
    ),
    "evtools-demo": (
        _EXIT_STATUS,
        Section("ENVIRONMENT",
                intro="evtools demo publishes to filesystem:// unless -b/--broker names another "
                      "broker: it reads neither EVTOOLS_BROKER_URL nor CELERY_BROKER_URL, nor the "
                      "broker_url of the -A app.",
                items=_FS_BROKER_VARS),
    ),
    "evtools-exporter": (
        Section("METRICS", intro="celery-exporter's families, with its names, labels and help "
                                 "texts (the prefix is --metric-prefix, celery_ by default):",
                items=(
                    ("celery_task_*_total", "Counters sent, received, started, succeeded, "
                     "failed, rejected, revoked and retried: task events by name, hostname (the part after @) and "
                     "queue_name; failed adds exception (the class name). Every counter but "
                     "sent is zero-filled for a label set on any task event."),
                    ("celery_task_runtime, celery_task_queue_wait_time",
                     "Histograms of runtime (--buckets) and of the wait from task-sent (or the "
                     "ETA) to task-started (--queue-wait-buckets)."),
                    ("celery_worker_up, celery_worker_tasks_active",
                     "Per hostname, from worker-online, worker-heartbeat and worker-offline, "
                     "and --worker-timeout; series of a silent worker are removed after "
                     "--purge-offline-worker-metrics."),
                    ("celery_queue_length, celery_active_{consumer,worker,process}_count",
                     "Per queue_name, measured every --refresh-interval in the background "
                     "(Redis lengths include priority sub-queues); a scrape never waits."),
                    ("evtools_*", "The exporter's own health: events received by type, dropped "
                                  "by kind, broker connected, reconnects, seconds since the "
                                  "last event, event lag, series sent to the overflow series."),
                )),
        Section("ENDPOINTS", items=(
            ("/metrics", "Prometheus text format, or OpenMetrics when the Accept header asks "
                         "for application/openmetrics-text."),
            ("/health", "200 while connected to the broker (and, with --health-max-silence, "
                        "while events keep arriving); 503 with the reason otherwise."),
            ("/", "A page linking to both."),
        )),
        _EXIT_STATUS,
        Section("ENVIRONMENT",
                intro="Every celery-exporter flag can be given as CE_ and its name in capitals "
                      "with underscores (CE_BROKER_URL, CE_PORT, CE_STATIC_LABEL='a=1 b=2'); "
                      "a flag on the command line wins.",
                items=_BROKER_VARS),
    ),
    "evtools-control": (
        _CONTROL_EXIT_STATUS,
        Section("ENVIRONMENT",
                intro="The commands go to the exchange celery.pidbox (the control_exchange of "
                      "the -A app, if given, with .pidbox appended), where Celery workers listen.",
                items=_BROKER_VARS + _FS_BROKER_VARS),
    ),
})


def _escape_char(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if ord(char) > 127:
        return f"\\[u{ord(char):04X}]"
    return char if char.isprintable() else ""


def escape(text: str) -> str:
    """Return ``text`` as roff text: special characters escaped, safe at the start of a line."""
    escaped = "".join(_escape_char(char) for char in text)
    return "\\&" + escaped if escaped.startswith(".") else escaped


def _escape_words(text: str) -> str:
    """Escape running text, keeping options and URLs from being hyphenated."""
    return _NO_HYPHENATION.sub(r"\\%", escape(text))


def _quote(arg: str) -> str:
    """Return ``arg`` as one macro argument."""
    return f'"{escape(arg)}"'


def _bold(text: str) -> str:
    return f"\\fB{escape(text)}\\fR"


def _italic(text: str) -> str:
    return f"\\fI{escape(text)}\\fR"


def page_name(ctx: click.Context) -> str:
    """Return the page name of the command ``ctx`` belongs to (``evtools-events``)."""
    return ctx.command_path.replace(" ", "-")


def _paragraphs(text: str) -> Iterator[tuple[bool, list[str]]]:
    """Split help text as click does: yield (preformatted, lines) per blank-line separated block."""
    block: list[str] = []
    for line in [*text.expandtabs().splitlines(), ""]:
        if line.strip():
            block.append(line.rstrip())
        elif block:
            if block[0].strip() == _NO_REWRAP:
                yield True, block[1:]
            else:
                yield False, [" ".join(" ".join(block).split())]
            block = []


def _body(text: str, first: str | None, following: str) -> list[str]:
    """Render help text; ``first`` starts the first paragraph, ``following`` the others."""
    lines: list[str] = []
    for index, (preformatted, block) in enumerate(_paragraphs(text)):
        macro = first if index == 0 else following
        if macro:
            lines.append(macro)
        if preformatted:
            lines += [".nf", *(escape(line) for line in block), ".fi"]
        else:
            lines += [_escape_words(line) for line in block]
    return lines


def _help_text(command: click.Command) -> str:
    """Return the command's help as ``--help`` shows it (cut at ``\\f``, deprecation noted)."""
    text = inspect.cleandoc(command.help or "").partition("\f")[0]
    if command.deprecated:
        text = f"{text}\n\n(Deprecated)" if text else "(Deprecated)"
    return text


def _summary(command: click.Command) -> str:
    return command.get_short_help_str(limit=200).rstrip(".")


def _header(ctx: click.Context, date: str, version: str) -> list[str]:
    name = page_name(ctx)
    return [f'.\\" {name}.{SECTION}: generated by tools.manpages from the click definitions; '
            "do not edit.",
            f".TH {_quote(name.upper())} {SECTION} {_quote(date)} {_quote(f'evtools {version}')} "
            f"{_quote(MANUAL)}",
            ".SH NAME",
            f"{escape(name)} \\- {_escape_words(_summary(ctx.command))}"]


def _usage_piece(piece: str) -> str:
    parts = _PLACEHOLDER.split(piece)
    return "".join(_italic(part) if index % 2 else escape(part)
                   for index, part in enumerate(parts) if part)


def _synopsis(ctx: click.Context) -> list[str]:
    pieces = " ".join(_usage_piece(piece) for piece in ctx.command.collect_usage_pieces(ctx))
    return [".SH SYNOPSIS", f"{_bold(ctx.command_path)} {pieces}".rstrip()]


def _description(ctx: click.Context) -> list[str]:
    text = _help_text(ctx.command)
    return [".SH DESCRIPTION", *_body(text, None, ".PP")] if text else []


def _option_term(option: click.Option, spec: str) -> str:
    """Format click's ``-b, --broker URL`` with the flags in bold and the metavar in italics."""
    flags = {*option.opts, *option.secondary_opts}
    parts = re.split("(" + "|".join(map(re.escape, _OPTION_SEPARATORS)) + ")", spec)
    return "".join(_bold(part) if part in flags
                   else escape(part) if part in _OPTION_SEPARATORS
                   else _italic(part)
                   for part in parts if part)


def _options(ctx: click.Context) -> list[str]:
    lines: list[str] = []
    for param in ctx.command.get_params(ctx):
        # Arguments appear in the synopsis; a hidden option has no help record.
        record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
        if isinstance(param, click.Option) and record is not None:
            spec, help_text = record
            lines += [".TP", _option_term(param, spec), *_body(help_text, None, ".IP")]
    return [".SH OPTIONS", *lines] if lines else []


def _subcontexts(ctx: click.Context) -> Iterator[click.Context]:
    """Yield a context for each visible subcommand of a group, in ``--help`` order."""
    command = ctx.command
    if not isinstance(command, click.Group):
        return
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is not None and not sub.hidden:
            yield click.Context(sub, info_name=name, parent=ctx, **sub.context_settings)


def _commands(ctx: click.Context) -> list[str]:
    lines: list[str] = []
    for sub in _subcontexts(ctx):
        summary = _escape_words(_summary(sub.command))
        see = f"See {_bold(page_name(sub))}({SECTION})."
        lines += [".TP", _bold(sub.info_name or ""), f"{summary}. {see}"]
    return [".SH COMMANDS", *lines] if lines else []


def _section(section: Section) -> list[str]:
    lines = [f".SH {_quote(section.title)}"]
    if section.intro:
        lines.append(_escape_words(section.intro))
    for tag, text in section.items:
        lines += [".TP", _bold(tag), _escape_words(text)]
    return lines


def _see_also(name: str, names: Sequence[str]) -> list[str]:
    others = [other for other in names if other != name]
    if not others:
        return []
    refs = [f".BR {escape(other)} ({SECTION}){',' if i < len(others) - 1 else ''}"
            for i, other in enumerate(others)]
    return [".SH \"SEE ALSO\"", *refs]


def render_page(ctx: click.Context, names: Sequence[str], date: str = MANUAL_DATE,
                version: str = __version__) -> str:
    """Return the roff source of the page for ``ctx``'s command; ``names`` are all the pages."""
    name = page_name(ctx)
    extra = [line for section in EXTRA_SECTIONS.get(name, ()) for line in _section(section)]
    lines = [*_header(ctx, date, version), *_synopsis(ctx), *_description(ctx), *_options(ctx),
             *_commands(ctx), *extra, *_see_also(name, names)]
    return "\n".join(lines) + "\n"


def _walk(ctx: click.Context) -> Iterator[click.Context]:
    yield ctx
    for sub in _subcontexts(ctx):
        yield from _walk(sub)


def command_contexts(cli: click.Command = cli_main,
                     prog_name: str = "evtools") -> list[click.Context]:
    """Return a context for the command and each visible subcommand, recursively: one per page."""
    return list(_walk(click.Context(cli, info_name=prog_name, **cli.context_settings)))


def pages(cli: click.Command = cli_main, prog_name: str = "evtools", date: str = MANUAL_DATE,
          version: str = __version__) -> dict[str, str]:
    """Return ``{file name: roff source}`` for the command and every subcommand, recursively."""
    contexts = command_contexts(cli, prog_name)
    names = [page_name(ctx) for ctx in contexts]
    return {f"{page_name(ctx)}.{SECTION}": render_page(ctx, names, date, version)
            for ctx in contexts}


def write_pages(outdir: Path, cli: click.Command = cli_main) -> list[Path]:
    """Write every page into ``outdir`` (created if missing); return the paths written."""
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in pages(cli).items():
        path = outdir / filename
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.manpages OUTDIR``: write the man pages into OUTDIR."""
    parser = argparse.ArgumentParser(prog="python -m tools.manpages",
                                     description="Write the evtools man pages into OUTDIR.")
    parser.add_argument("outdir", metavar="OUTDIR", type=Path)
    args = parser.parse_args(argv)
    for path in write_pages(args.outdir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
