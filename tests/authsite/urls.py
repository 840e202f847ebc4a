from django.urls import path

from channels_app.session_sync import session_sync_view

from . import views

urlpatterns = [
    path("whoami/", views.whoami),
    path("login-page/", views.login_page),
    path("session-sync/", session_sync_view),
    path("http-login/", views.http_login),
    path("logout/", views.logout_view),
    path("password-change/", views.password_change),
]
