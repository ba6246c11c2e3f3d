"""Settings and where they come from: flags, the environment, a Celery app, Celery's defaults."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import AppImportError, ConfigurationError

__all__ = ("Settings", "DEFAULT_BROKER_URL", "BROKER_ENV_VARS", "TRANSPORT_OPTIONS_ENV_VAR",
           "SSL_OPTIONS_ENV_VAR", "load_app", "parse_key_values", "resolve_settings")

DEFAULT_BROKER_URL = "amqp://guest:guest@localhost:5672//"

#: Environment variables naming the broker, in the order they are consulted.
BROKER_ENV_VARS = ("EVTOOLS_BROKER_URL", "CELERY_BROKER_URL")

#: Environment variables holding broker transport and TLS options (a JSON object, or
#: ``KEY=VALUE`` entries separated by newlines or ``;``).
TRANSPORT_OPTIONS_ENV_VAR = "EVTOOLS_BROKER_TRANSPORT_OPTIONS"
SSL_OPTIONS_ENV_VAR = "EVTOOLS_BROKER_SSL_OPTIONS"


@dataclasses.dataclass(slots=True)
class Settings:
    """Every setting evtools reads, with Celery's names and defaults."""

    broker_url: str = DEFAULT_BROKER_URL
    event_exchange: str = "celeryev"
    event_queue_prefix: str = "celeryev"
    event_queue_ttl: float | None = 5.0
    event_queue_expires: float | None = 60.0
    event_queue_exclusive: bool = True
    event_queue_durable: bool = False
    event_serializer: str = "json"
    control_exchange: str = "celery"
    broker_transport_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: TLS: ``None`` (as the URL says), ``True`` (TLS with defaults) or kombu's ``ssl`` options.
    broker_use_ssl: bool | dict[str, Any] | None = None
    #: Where ``broker_url`` came from: "argument", an environment variable, "app" or "default".
    broker_url_source: str = "default"

    def __post_init__(self) -> None:
        if self.event_queue_exclusive and self.event_queue_durable:
            raise ConfigurationError(
                "event queue cannot be both exclusive and durable: choose one or the other")
        if self.event_serializer != "json":
            raise ConfigurationError(
                f"event_serializer {self.event_serializer!r} is not supported: evtools speaks JSON only")

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


#: Celery setting names evtools takes from an app's configuration.
_APP_SETTINGS = (
    "event_exchange", "event_queue_prefix", "event_queue_ttl", "event_queue_expires",
    "event_queue_exclusive", "event_queue_durable", "event_serializer", "control_exchange",
    "broker_transport_options", "broker_use_ssl",
)


def load_app(name: str) -> Any:
    """Import the Celery app named like ``proj``, ``proj.celery:app`` or ``proj.app``."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if attr or "." not in module_name:
            raise AppImportError(f"cannot import app {name!r}: {exc}") from None
        module_name, _, attr = module_name.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise AppImportError(f"cannot import app {name!r}: {exc}") from None
    except Exception as exc:  # the user's module raised while importing
        raise AppImportError(f"importing app {name!r} failed: {type(exc).__name__}: {exc}") from None
    candidates = [attr] if attr else ["app", "celery"]
    for candidate in candidates:
        app = getattr(module, candidate, None)
        if app is not None and hasattr(app, "conf"):
            return app
    raise AppImportError(f"{name!r} does not name a Celery app (looked for {', '.join(candidates)})")


#: App settings for which None means "none" (no message TTL, no queue expiry), as in Celery.
_NONE_MEANS_NONE = frozenset({"event_queue_ttl", "event_queue_expires"})


def _settings_from_app(app: Any) -> dict[str, Any]:
    conf = app.conf
    found: dict[str, Any] = {}
    for key in _APP_SETTINGS:
        if key in _NONE_MEANS_NONE:
            try:  # a Celery app's conf gives the effective value, its default included
                found[key] = conf[key]
            except KeyError:
                pass
        else:
            value = conf.get(key)
            if value is not None:
                found[key] = value
    broker_url = conf.get("broker_url")
    if broker_url:
        found["broker_url"] = broker_url
    return found


def _option_value(text: str) -> Any:
    """A value as JSON when it parses (``3``, ``true``, ``{"a": 1}``), else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_key_values(items: Iterable[str], what: str) -> dict[str, Any]:
    """Turn ``KEY=VALUE`` strings into a dict; raise :class:`ConfigurationError` naming a bad one."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not key.replace("_", "").isalnum():
            raise ConfigurationError(f"{what}: expected KEY=VALUE (e.g. master_name=mymaster), "
                                     f"got {item!r}")
        options[key] = _option_value(value.strip())
    return options


def options_from_environment(var: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """Options in environment variable ``var``: a JSON object, or ``KEY=VALUE`` entries."""
    text = environ.get(var, "").strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ConfigurationError(f"${var} is not a valid JSON object: {exc}") from None
        if not isinstance(value, dict):
            raise ConfigurationError(f"${var} must be a JSON object")
        return value
    entries = [entry for line in text.splitlines() for entry in line.split(";") if entry.strip()]
    return parse_key_values(entries, f"${var}")


def _merged_options(app_value: Any, env: dict[str, Any], given: Mapping[str, Any] | None,
                    name: str) -> Any:
    """App options, then the environment's, then the command line's, key by key."""
    if not env and not given:
        return app_value
    if app_value is not None and not isinstance(app_value, (dict, bool)):
        raise ConfigurationError(f"the app's {name} must be a dict, not {type(app_value).__name__}")
    base = dict(app_value) if isinstance(app_value, dict) else {}
    return {**base, **env, **(given or {})}


def resolve_settings(broker_url: str | None = None, app: str | Any | None = None,
                     environ: Mapping[str, str] | None = None,
                     transport_options: Mapping[str, Any] | None = None,
                     ssl_options: Mapping[str, Any] | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings`: explicit ``broker_url``, then the environment, then ``app``, then defaults.

    ``app`` may be an app object or a name for :func:`load_app` (Celery is imported only then).
    ``transport_options`` and ``ssl_options`` (from the command line) are merged, key by key,
    over the environment's and then the app's ``broker_transport_options``/``broker_use_ssl``.
    ``overrides`` are explicit settings (``event_queue_ttl=...``); ``None`` values are ignored.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if app is not None:
        app_obj = load_app(app) if isinstance(app, str) else app
        values.update(_settings_from_app(app_obj))
        if "broker_url" in values:
            values["broker_url_source"] = "app"
    env_url = next(((var, environ[var]) for var in BROKER_ENV_VARS if environ.get(var)), None)
    if env_url is not None:
        values["broker_url"], values["broker_url_source"] = env_url[1], env_url[0]
    if broker_url:
        values["broker_url"], values["broker_url_source"] = broker_url, "argument"
    values.update({k: v for k, v in overrides.items() if v is not None})
    merged = _merged_options(values.get("broker_transport_options"),
                             options_from_environment(TRANSPORT_OPTIONS_ENV_VAR, environ),
                             transport_options, "broker_transport_options")
    if merged is not None:
        values["broker_transport_options"] = merged
    use_ssl = _merged_options(values.get("broker_use_ssl"),
                              options_from_environment(SSL_OPTIONS_ENV_VAR, environ),
                              ssl_options, "broker_use_ssl")
    if use_ssl is not None:
        values["broker_use_ssl"] = use_ssl
    try:
        return Settings(**values)
    except TypeError as exc:
        raise ConfigurationError(f"unknown setting: {exc}") from None
