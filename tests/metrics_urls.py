"""The metrics views on their own, for tests/test_metrics.py (which also loads
it where prometheus_client is blocked, so it imports nothing else)."""

from django.urls import path

from channels_app.metrics import views

urlpatterns = [
    path("metrics/", views.metrics),
    path("health/", views.health),
]
