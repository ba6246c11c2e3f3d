"""The control view: check a command's arguments, send it to the workers, print their replies.

Replies print as ``-> w1@host: OK pong`` (Celery's ``celery control`` on one line), or with
``json_lines`` as one ``{"hostname": ..., "reply": ...}`` object per line.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from . import control
from .transport.broker import connect, safe_url
from .config import Settings
from .errors import BrokerError, ConfigurationError
from .proctitle import set_process_title
from .runner import run_until_stopped
from .textsafe import escape_json, escape_text

__all__ = ("Command", "COMMANDS", "NO_REPLY", "command_call", "destinations", "reply_status",
           "human_line", "json_line", "reply_lines", "exit_status", "run_control")

Output = Callable[[str], None]
Call = Callable[..., list[control.Reply]]

#: Celery's wording, for scripts that already look for it.
NO_REPLY = "Error: No nodes replied within time constraint"


@dataclasses.dataclass(frozen=True, slots=True)
class Command:
    """A control command: its library function, its arguments, and whether workers reply."""

    function: Call
    arguments: tuple[str, ...] = ()
    variadic: bool = False
    replies: bool = True
    options: str = ""

    def usage(self, name: str) -> str:
        """Return how the command is typed: ``evtools control revoke TASK_ID... [--terminate]``."""
        words = [f"evtools control {name}", *self.arguments]
        if self.variadic:
            words[-1] += "..."
        return " ".join([*words, self.options]).rstrip()


#: Every command, by Celery's name.
COMMANDS: Mapping[str, Command] = MappingProxyType({
    "ping": Command(control.ping),
    "enable_events": Command(control.enable_events),
    "disable_events": Command(control.disable_events),
    "heartbeat": Command(control.heartbeat, replies=False),
    "revoke": Command(control.revoke, ("TASK_ID",), variadic=True,
                      options="[--terminate [--signal SIG]]"),
    "rate_limit": Command(control.rate_limit, ("TASK_NAME", "RATE")),
})


def _check_arity(name: str, command: Command, args: Sequence[str]) -> None:
    wanted = len(command.arguments)
    if len(args) == wanted or (command.variadic and len(args) > wanted):
        return
    if not wanted:
        raise ConfigurationError(f"{name} takes no arguments (got {' '.join(args)!r})")
    raise ConfigurationError(f"{name} needs {' '.join(command.arguments)}: "
                             f"{command.usage(name)}")


def command_call(name: str, args: Sequence[str] = (), terminate: bool = False,
                 signal: str | None = None) -> Call:
    """Return the library call for a command line, its arguments checked; it takes a connection."""
    command = COMMANDS.get(name)
    if command is None:
        raise ConfigurationError(f"unknown control command {name!r}: choose one of "
                                 f"{', '.join(COMMANDS)}")
    _check_arity(name, command, args)
    if name != "revoke" and (terminate or signal):
        raise ConfigurationError("--terminate and --signal go with revoke")
    if name == "revoke":
        if signal and not terminate:
            raise ConfigurationError("--signal says how to terminate: add --terminate")
        return functools.partial(command.function, task_id=control.check_task_ids(args),
                                 terminate=terminate, signal=control.check_signal(signal or "TERM"))
    if name == "rate_limit":
        return functools.partial(command.function, task_name=control.check_task_name(args[0]),
                                 rate=control.check_rate(args[1]))
    return command.function


def destinations(values: Iterable[str]) -> list[str] | None:
    """Return the hostnames given (repeated or comma-separated, as Celery takes them), or None."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return names or None


def reply_status(reply: Any) -> tuple[str, str]:
    """Return ``("OK" or "ERROR", text)`` for one worker's reply, as ``celery control`` shows it."""
    if isinstance(reply, dict) and "error" in reply and "ok" not in reply:
        return "ERROR", _text(reply["error"])
    if isinstance(reply, dict) and "ok" in reply:
        return "OK", _text(reply["ok"])
    return "OK", _text(reply)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return escape_text(value)
    return escape_text(json.dumps(value, sort_keys=True, ensure_ascii=False, default=repr))


def human_line(hostname: str, reply: Any) -> str:
    """Return ``-> w1@host: OK pong``."""
    status, text = reply_status(reply)
    return f"-> {escape_text(hostname)}: {status}{' ' + text if text else ''}"


def json_line(hostname: str, reply: Any) -> str:
    """Return ``{"hostname": "w1@host", "reply": {"ok": "pong"}}``."""
    text = json.dumps({"hostname": hostname, "reply": reply}, ensure_ascii=False, default=repr)
    return escape_json(text)


def _each_reply(replies: Iterable[control.Reply]) -> Iterator[tuple[str, Any]]:
    for answer in replies:
        yield from answer.items()


def reply_lines(replies: Iterable[control.Reply], json_lines: bool = False) -> Iterator[str]:
    """Yield one line per worker reply."""
    line = json_line if json_lines else human_line
    for hostname, reply in _each_reply(replies):
        yield line(hostname, reply)


def exit_status(replies: Sequence[control.Reply], expects_reply: bool = True) -> int:
    """Return 0 when every worker answered OK, 1 when none answered or one answered an error."""
    if expects_reply and not replies:
        return 1
    errors = [host for host, reply in _each_reply(replies) if reply_status(reply)[0] == "ERROR"]
    return 1 if errors else 0


def _send(settings: Settings, call: Call, destination: list[str] | None,
          timeout: float) -> list[control.Reply]:
    connection = connect(settings)
    try:
        return call(connection, destination=destination, timeout=timeout, settings=settings)
    except (OSError, *connection.connection_errors, *connection.channel_errors) as exc:
        reason = str(exc) or type(exc).__name__
        raise BrokerError(f"lost the broker {safe_url(settings.broker_url)}: {reason}") from None
    finally:
        connection.release()


def run_control(settings: Settings, name: str, args: Sequence[str] = (),
                destination: Iterable[str] = (), timeout: float = 1.0, json_lines: bool = False,
                terminate: bool = False, signal: str | None = None, out: Output = print,
                status: Output = lambda _: None) -> int:
    """Send a control command and print each worker's reply; return the exit status."""
    call = command_call(name, args, terminate=terminate, signal=signal)
    hosts = destinations(destination)
    set_process_title("control", prefix="evtools control")
    replies = _send(settings, call, hosts, timeout)
    expects_reply = COMMANDS[name].replies
    if not expects_reply:
        status(f"-> {name} sent to {', '.join(hosts) if hosts else 'all workers'} "
               "(workers do not reply to it)")
    run_until_stopped(lambda: _print(reply_lines(replies, json_lines), out))
    if expects_reply and not replies:
        status(NO_REPLY)
    return exit_status(replies, expects_reply)


def _print(lines: Iterable[str], out: Output) -> None:
    for line in lines:
        out(line)
