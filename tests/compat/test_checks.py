"""The system checks on a Channels 4 project after its import prefix changed.

Each test runs ``manage.py`` in a copy of ``checks_typo`` (the tutorial's
chat with one typo) in a subprocess, because what the user sees is the
command's output and exit status, and because listing ``daphne`` in
``INSTALLED_APPS`` in-process would register Daphne's own check for the rest
of the test run.
"""

import subprocess
import sys

import pytest

from tests.compat import checks_typo

pytestmark = pytest.mark.e2e

#: The usual apps of the tutorial, after channels_app (or whatever comes first).
TUTORIAL_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
]

#: Something importable to stand in for the application, where the typo is
#: not what a test is about.
IMPORTABLE = "checks_typo.consumers.ChatConsumer"


def manage(project, *args, apps=None, application=None, **env):
    if apps is not None:
        env["CHECKS_TYPO_INSTALLED_APPS"] = ",".join(apps)
    if application is not None:
        env["CHECKS_TYPO_ASGI_APPLICATION"] = application
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        env=checks_typo.manage_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def project(tmp_path):
    return checks_typo.copy_to(tmp_path)


def test_a_typo_in_the_routing_module_is_shown_where_it_is(project):
    result = manage(project, "check")
    routing = project / "checks_typo" / "routing.py"
    assert result.returncode == 1
    assert "(channels_app.E002)" in result.stderr
    assert f'File "{routing}", line {checks_typo.typo_line(routing)}' in result.stderr
    assert "consumers.ChatConsumr.as_asgi()" in result.stderr
    assert "Did you mean: 'ChatConsumer'?" in result.stderr
    assert "does not define" not in result.stderr


def test_daphne_kept_first_after_migrating_is_an_error_saying_what_to_do(project):
    # Channels 4's installation page puts "daphne" at the top; a project that
    # only added "channels_app" below it gets Daphne's runserver.
    apps = ["daphne", "channels_app", *TUTORIAL_APPS]
    result = manage(project, "check", apps=apps, application=IMPORTABLE)
    assert result.returncode == 1
    assert "(channels_app.E007)" in result.stderr
    assert (
        "'manage.py runserver' comes from 'daphne', which is listed before "
        "'channels_app' in INSTALLED_APPS. It is Daphne's runserver" in result.stderr
    )
    assert "without channels_app's in-process workers" in result.stderr
    assert "on_startup and on_shutdown hooks never run" in result.stderr
    assert (
        "HINT: Remove 'daphne' or list 'channels_app' before it in INSTALLED_APPS"
        in result.stderr
    )


def test_daphnes_runserver_refuses_to_start_with_the_same_error(project):
    apps = ["daphne", "channels_app", *TUTORIAL_APPS]
    result = manage(
        project,
        "runserver",
        "--noreload",
        "127.0.0.1:0",
        apps=apps,
        application=IMPORTABLE,
    )
    assert result.returncode == 1
    assert "(channels_app.E007)" in result.stderr
    assert "Remove 'daphne' or list 'channels_app' before it" in result.stderr


def test_staticfiles_before_channels_app_is_an_error_about_websockets(project):
    apps = ["django.contrib.staticfiles", "channels_app", *TUTORIAL_APPS[:3]]
    result = manage(project, "check", apps=apps, application=IMPORTABLE)
    assert result.returncode == 1
    assert "(channels_app.E007)" in result.stderr
    assert "It starts Django's WSGI development server" in result.stderr
    assert "every WebSocket connection gets a 404" in result.stderr
    assert (
        "List 'channels_app' before 'django.contrib.staticfiles' in INSTALLED_APPS"
        in result.stderr
    )


def test_the_migrated_settings_pass(project):
    apps = ["channels_app", *TUTORIAL_APPS]
    result = manage(project, "check", apps=apps, application=IMPORTABLE)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
