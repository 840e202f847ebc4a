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


def http_login(request):
    """Log in over HTTP (POST username, password), as a login form would."""
    from django.contrib.auth import authenticate, login

    user = authenticate(
        request,
        username=request.POST.get("username"),
        password=request.POST.get("password"),
    )
    if user is not None:
        login(request, user)
    return JsonResponse({"user": user.get_username() if user else None})


def logout_view(request):
    """Log out over HTTP (POST), with Django's ``logout``."""
    from django.contrib.auth import logout

    logout(request)
    return JsonResponse({"user": None})


def password_change(request):
    """Set a new password (POST ``password``), staying logged in in this
    session, as Django's PasswordChangeView does."""
    from django.contrib.auth import update_session_auth_hash

    user = request.user
    if not user.is_authenticated:
        return JsonResponse({"error": "not logged in"}, status=403)
    user.set_password(request.POST["password"])
    user.save()
    update_session_auth_hash(request, user)
    return JsonResponse({"user": user.get_username()})
