from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.urls import include, path

from channels_app.metrics import views as metrics_views
from channels_app.session_sync import ensure_sync_binding, session_sync_view
from chat import views as chat_views


def health(request):
    return HttpResponse("channels_app demo is running\n", content_type="text/plain")


urlpatterns = [
    path("", include("chat.urls")),
    # The login page logs in over a WebSocket before the browser has a
    # session: its ticket is bound to the cookie this decorator sets.
    path(
        "accounts/login/",
        ensure_sync_binding(auth_views.LoginView.as_view()),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", chat_views.signup, name="signup"),
    path("accounts/session-sync/", session_sync_view, name="session-sync"),
    path("health/", health, name="health"),
    # Prometheus scrapes this; the health check probes every channel layer.
    path("metrics/", metrics_views.metrics, name="metrics"),
    path("health/layers/", metrics_views.health, name="health-layers"),
]
