"""A separate receiving process for the database layer's multi-process tests.

Run as ``python -m tests.layers.database_worker CHANNEL RECEIVERS`` with the
environment from ``database_fixtures.database_env``.  It prints ``ready``
once its receivers wait, then, when each receiver has taken one message
``{"stop": true}``, a JSON list of the ``n`` of every other message it got.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import django
from django.conf import settings


def configure() -> None:
    backend, name = os.environ["DBLAYER_BACKEND"], os.environ["DBLAYER_NAME"]
    if backend == "sqlite":
        database = {"ENGINE": "django.db.backends.sqlite3", "NAME": name}
    else:
        database = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "HOST": os.environ["PGHOST"],
            "PORT": os.environ["PGPORT"],
            "USER": os.environ["PGUSER"],
        }
    settings.configure(
        INSTALLED_APPS=["channels_app"], DATABASES={"default": database}, USE_TZ=True
    )
    django.setup()


async def main(channel: str, receivers: int) -> None:
    from channels_app.layers.database import DatabaseChannelLayer

    layer = DatabaseChannelLayer(capacity=100_000)
    got: list[int] = []

    async def receive_until_stopped() -> None:
        while True:
            message = await layer.receive(channel)
            if message.get("stop"):
                return
            got.append(message["n"])

    tasks = [asyncio.ensure_future(receive_until_stopped()) for _ in range(receivers)]
    await asyncio.sleep(0.3)
    print("ready", flush=True)
    await asyncio.gather(*tasks)
    await layer.close()
    print(json.dumps(got), flush=True)


if __name__ == "__main__":
    configure()
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
