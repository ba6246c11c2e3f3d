"""Settings come from an argument, the environment, a Celery app, or Celery's defaults."""

import sys
import textwrap

import pytest

from evtools.config import DEFAULT_BROKER_URL, Settings, load_app, resolve_settings
from evtools.errors import AppImportError, ConfigurationError


def test_defaults_are_celerys():
    settings = resolve_settings(environ={})
    assert settings.broker_url == DEFAULT_BROKER_URL == "amqp://guest:guest@localhost:5672//"
    assert (settings.event_exchange, settings.event_queue_prefix, settings.event_queue_ttl,
            settings.event_queue_expires, settings.event_queue_exclusive,
            settings.event_queue_durable, settings.event_serializer) == \
        ("celeryev", "celeryev", 5.0, 60.0, True, False, "json")
    assert settings.broker_url_source == "default"


def test_defaults_match_celerys_configuration():
    from celery import Celery
    conf = Celery(set_as_current=False).conf
    settings = Settings()
    for key in ("event_exchange", "event_queue_prefix", "event_queue_ttl", "event_queue_expires",
                "event_queue_exclusive", "event_queue_durable", "event_serializer",
                "control_exchange"):
        assert getattr(settings, key) == conf[key], key


@pytest.fixture
def app_module(tmp_path, monkeypatch):
    (tmp_path / "proj_evtools_test.py").write_text(textwrap.dedent("""
        from celery import Celery
        app = Celery("proj", broker="redis://from-app:6379/0", set_as_current=False)
        app.conf.event_exchange = "appev"
        app.conf.event_queue_ttl = 2.5
    """))
    monkeypatch.chdir(tmp_path)
    yield "proj_evtools_test"
    sys.modules.pop("proj_evtools_test", None)


def test_broker_url_order_argument_env_app_default(app_module):
    env = {"EVTOOLS_BROKER_URL": "redis://evtools-env//", "CELERY_BROKER_URL": "redis://celery-env//"}
    assert resolve_settings("memory://", app=app_module, environ=env).broker_url == "memory://"
    settings = resolve_settings(None, app=app_module, environ=env)
    assert (settings.broker_url, settings.broker_url_source) == ("redis://evtools-env//",
                                                                  "EVTOOLS_BROKER_URL")
    env.pop("EVTOOLS_BROKER_URL")
    assert resolve_settings(None, app=app_module, environ=env).broker_url == "redis://celery-env//"
    settings = resolve_settings(None, app=app_module, environ={})
    assert (settings.broker_url, settings.broker_url_source) == ("redis://from-app:6379/0", "app")
    assert (settings.event_exchange, settings.event_queue_ttl) == ("appev", 2.5)


def test_app_names_in_every_form(app_module):
    for name in (app_module, f"{app_module}:app", f"{app_module}.app"):
        assert load_app(name).main == "proj"


def test_bad_app_names_are_clear_errors(app_module):
    with pytest.raises(AppImportError, match="cannot import app 'no_such_module_xyz'"):
        load_app("no_such_module_xyz")
    with pytest.raises(AppImportError, match="does not name a Celery app"):
        load_app(f"{app_module}:missing")


def test_overrides_and_invalid_combinations():
    settings = resolve_settings(environ={}, event_queue_ttl=1.0, event_queue_prefix=None)
    assert settings.event_queue_ttl == 1.0 and settings.event_queue_prefix == "celeryev"
    with pytest.raises(ConfigurationError):
        Settings(event_queue_exclusive=True, event_queue_durable=True)
    with pytest.raises(ConfigurationError):
        Settings(event_serializer="pickle")


def test_an_apps_none_ttl_and_expiry_mean_none_as_in_celery():
    from celery import Celery
    app = Celery(set_as_current=False)
    app.conf.event_queue_ttl = None
    app.conf.event_queue_expires = None
    settings = resolve_settings(app=app, environ={})
    assert (settings.event_queue_ttl, settings.event_queue_expires) == (None, None)
    unset = resolve_settings(app=Celery(set_as_current=False), environ={})
    assert (unset.event_queue_ttl, unset.event_queue_expires) == (5.0, 60.0)
