import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.authsite.settings")
django.setup(set_prefix=False)

from .routing import build_application  # noqa: E402

application = build_application()
