"""The exceptions evtools raises; the CLI turns each into one line on stderr."""

from __future__ import annotations


class EvtoolsError(Exception):
    """Base class: a problem the user can act on, reported without a traceback."""

    exit_code: int = 1


class ConfigurationError(EvtoolsError):
    """Settings that cannot work together or cannot be read."""

    exit_code = 2


class BrokerError(EvtoolsError):
    """The broker URL is malformed, names an unknown transport, or cannot be reached."""


class PermissionRefused(BrokerError):
    """The broker refused an operation evtools needs (a missing RabbitMQ permission)."""

    exit_code = 2


class UnsupportedBroker(ConfigurationError):
    """A transport that cannot carry Celery events at all (no fanout/topic exchange)."""


class AppImportError(ConfigurationError):
    """A Celery app named with ``-A/--app`` cannot be imported."""


class MissingDependency(ConfigurationError):
    """An optional extra (``evtools[prometheus]``, ``evtools[redis]``) is not installed."""


class CameraError(ConfigurationError):
    """A camera class cannot be imported or is not a camera."""


class MalformedEvent(EvtoolsError):
    """A message on the event exchange that is not a valid event.

    ``kind`` names what was wrong (``not-json``, ``not-an-object``, ``missing-type``,
    ``bad-field``, ``content-type``...), so drops can be counted by kind.
    """

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


class WatchdogExpired(EvtoolsError):
    """No event at all arrived for the ``--watchdog`` period."""

    exit_code = 3
