"""System checks: each problem is an error with an id and a hint saying what to do."""

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from channels_app.checks import (
    check_asgi_application,
    check_channel_layers,
    check_channel_layers_reachable,
    check_runserver_not_shadowed,
)
from tests.compat import checks_typo
from tests.servers import free_port
from tests.serving import redis_layers

#: Something importable that can stand in for a root application.
application = object()


def ids(messages):
    return [message.id for message in messages]


def test_importable_asgi_application_passes(settings):
    settings.ASGI_APPLICATION = "tests.test_checks.application"
    assert check_asgi_application() == []


def test_missing_asgi_application(settings):
    del settings.ASGI_APPLICATION
    [error] = check_asgi_application()
    assert error.id == "channels_app.E001"
    assert error.level == checks.ERROR
    assert "ASGI_APPLICATION = 'myproject.asgi.application'" in error.hint


@pytest.mark.parametrize(
    "path, reason",
    [
        ("tests.no_such_module.application", "No module named"),
        ("tests.test_checks.missing", "has no attribute 'missing'"),
        ("application", "is not a dotted path"),
    ],
)
def test_unimportable_asgi_application_says_why(settings, path, reason):
    settings.ASGI_APPLICATION = path
    [error] = check_asgi_application()
    assert error.id == "channels_app.E002"
    assert path in error.msg and reason in error.msg
    assert error.hint


def test_a_typo_inside_the_asgi_modules_imports_is_reported_as_itself(settings):
    # Django's import_string turned this into 'Module "...asgi" does not
    # define a "application" attribute', which sends the user to the wrong
    # file.
    settings.ASGI_APPLICATION = "tests.compat.checks_typo.asgi.application"
    [error] = check_asgi_application()
    assert error.id == "channels_app.E002"
    routing = checks_typo.HERE / "routing.py"
    assert f'File "{routing}", line {checks_typo.typo_line()}' in error.msg
    assert "has no attribute 'ChatConsumr'" in error.msg
    assert "Did you mean: 'ChatConsumer'?" in error.msg
    assert "does not define" not in error.msg


def test_no_channel_layers_is_fine(settings):
    settings.CHANNEL_LAYERS = {}
    assert check_channel_layers() == []
    assert check_channel_layers_reachable() == []


def test_valid_layer_config_passes(settings):
    settings.CHANNEL_LAYERS = redis_layers()
    assert check_channel_layers() == []


def test_channel_layers_must_be_a_dict(settings):
    settings.CHANNEL_LAYERS = [("default", {})]
    assert ids(check_channel_layers()) == ["channels_app.E003"]


@pytest.mark.parametrize(
    "entry, expected_id, words",
    [
        ({"CONFIG": {}}, "channels_app.E003", "no BACKEND"),
        (
            {"BACKEND": "channels_redis.core.RedisChannelLayer", "ROUTING": "x.y"},
            "channels_app.E003",
            "ROUTING",
        ),
        ({"BACKEND": "nowhere.layers.FastLayer"}, "channels_app.E004", "nowhere"),
        (
            {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": ["redis://127.0.0.1:6379/4"], "hots": 1},
            },
            "channels_app.E005",
            "hots",
        ),
    ],
)
def test_invalid_layer_entries_are_reported(settings, entry, expected_id, words):
    settings.CHANNEL_LAYERS = {"default": entry}
    [error] = check_channel_layers()
    assert error.id == expected_id
    assert "'default'" in error.msg and words in error.msg
    assert error.hint


def test_bad_test_config_is_reported_too(settings):
    layers = redis_layers()
    layers["default"]["TEST_CONFIG"] = {"no_such_option": True}
    settings.CHANNEL_LAYERS = layers
    [error] = check_channel_layers()
    assert error.id == "channels_app.E005"
    assert "TEST_CONFIG" in error.msg


def test_reachable_layer_passes(settings):
    settings.CHANNEL_LAYERS = redis_layers()
    assert check_channel_layers_reachable() == []


def test_unreachable_layer_is_an_error(settings):
    port = free_port()  # nothing listens there
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{port}/0"]},
        }
    }
    [error] = check_channel_layers_reachable()
    assert error.id == "channels_app.E006"
    assert "'default' cannot be reached" in error.msg
    assert "Connect" in error.msg or "refused" in error.msg
    assert "Start the service" in error.hint


def test_reachability_is_a_deployment_check(settings):
    port = free_port()
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{port}/0"]},
        }
    }
    settings.ASGI_APPLICATION = "tests.test_checks.application"
    # Everyday commands do not wait on the network...
    call_command("check", tags=["channels"])
    # ...`check --deploy` does.
    with pytest.raises(SystemCheckError, match="channels_app.E006"):
        call_command("check", "--deploy", tags=["channels"])


def test_staticfiles_listed_first_is_an_error_saying_websockets_fail(settings):
    settings.INSTALLED_APPS = [
        "django.contrib.staticfiles",
        "channels_app",
        "django.contrib.contenttypes",
        "django.contrib.auth",
    ]
    [error] = check_runserver_not_shadowed()
    assert error.id == "channels_app.E007"
    assert error.level == checks.ERROR
    assert (
        "'manage.py runserver' comes from 'django.contrib.staticfiles', which is "
        "listed before 'channels_app' in INSTALLED_APPS." in error.msg
    )
    assert "WSGI development server" in error.msg
    assert "every WebSocket connection gets a 404" in error.msg
    assert (
        "List 'channels_app' before 'django.contrib.staticfiles' in INSTALLED_APPS"
        in error.hint
    )


def test_silencing_the_old_warning_id_still_silences_the_error(settings):
    # The project chose the other runserver when this was channels_app.W001.
    settings.INSTALLED_APPS = [
        "django.contrib.staticfiles",
        "channels_app",
        "django.contrib.contenttypes",
        "django.contrib.auth",
    ]
    settings.SILENCED_SYSTEM_CHECKS = ["channels_app.W001"]
    assert check_runserver_not_shadowed() == []


def test_runserver_is_ours_when_channels_app_comes_first(settings):
    settings.INSTALLED_APPS = [
        "channels_app",
        "django.contrib.staticfiles",
        "django.contrib.contenttypes",
        "django.contrib.auth",
    ]
    assert check_runserver_not_shadowed() == []


def test_a_projects_runserver_extending_ours_is_ours(settings):
    settings.INSTALLED_APPS = [
        "tests.compat.checks_apps.own_runserver",
        "channels_app",
        "django.contrib.contenttypes",
        "django.contrib.auth",
    ]
    assert check_runserver_not_shadowed() == []


def test_another_wsgi_runserver_listed_first_is_named_as_such(settings):
    # whitenoise.runserver_nostatic is one: Django's WSGI server again.
    settings.INSTALLED_APPS = [
        "tests.compat.checks_apps.nostatic",
        "channels_app",
        "django.contrib.staticfiles",
        "django.contrib.contenttypes",
        "django.contrib.auth",
    ]
    [error] = check_runserver_not_shadowed()
    assert error.id == "channels_app.E007"
    assert "comes from 'tests.compat.checks_apps.nostatic'" in error.msg
    assert "every WebSocket connection gets a 404" in error.msg
    assert (
        "List 'channels_app' before 'tests.compat.checks_apps.nostatic'" in error.hint
    )
