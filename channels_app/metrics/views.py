"""The views a project mounts: the Prometheus scrape endpoint and a layer health check.

``metrics`` answers in the Prometheus text format from the default registry
(501 with an explanation when ``prometheus_client`` is missing); ``health``
sends a message through every configured channel layer and back.
"""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from ..checks import layer_unreachable_reason
from . import ENABLED, MISSING


def metrics(request: HttpRequest) -> HttpResponse:
    """Every metric of the default Prometheus registry, ours among them."""
    if not ENABLED:
        return HttpResponse(MISSING + "\n", status=501, content_type="text/plain")
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


async def health(request: HttpRequest) -> JsonResponse:
    """200 ``{"layer": "ok"}`` when every configured layer carries a message.

    Otherwise 503, with ``"layer"`` giving the first error.  ``"layers"``
    says it per alias.  Each check sends one message on a fresh layer
    instance (with a timeout), so it measures what a consumer would meet,
    not a cached connection.  The view is async and the checks run in
    threads of their own, side by side: a dead layer's timeout never holds
    the thread Django runs sync views in.
    """
    aliases = list(getattr(settings, "CHANNEL_LAYERS", None) or {})
    check = sync_to_async(layer_unreachable_reason, thread_sensitive=False)
    reasons = await asyncio.gather(*(check(alias) for alias in aliases))
    results = {alias: why or "ok" for alias, why in zip(aliases, reasons, strict=True)}
    problems = [f"{alias}: {why}" for alias, why in results.items() if why != "ok"]
    if not aliases:
        problems = ["no channel layer is configured (CHANNEL_LAYERS is empty)"]
    body = {"layer": problems[0] if problems else "ok", "layers": results}
    return JsonResponse(body, status=503 if problems else 200)
