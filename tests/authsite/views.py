from django.http import JsonResponse
from django.middleware.csrf import get_token

from channels_app.session_sync import ensure_sync_binding


def whoami(request):
    """The request's user; counts visits so anonymous browsers get a session too."""
    request.session["visits"] = request.session.get("visits", 0) + 1
    user = request.user
    return JsonResponse(
        {
            "user": user.get_username() if user.is_authenticated else None,
            "visits": request.session["visits"],
            "csrftoken": get_token(request),
        }
    )


@ensure_sync_binding
def login_page(request):
    """A login page: it gives a CSRF token and a binding cookie, no session."""
    return JsonResponse({"csrftoken": get_token(request)})
