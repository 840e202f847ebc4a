import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "checks_typo.settings")
# Initialise Django before importing code that may import models.
django_asgi_app = get_asgi_application()

from channels_app.auth import AuthMiddlewareStack  # noqa: E402
from channels_app.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels_app.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from . import routing  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(routing.websocket_urlpatterns))
        ),
    }
)
