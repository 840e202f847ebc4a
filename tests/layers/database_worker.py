"""A separate receiving process for the database layer's multi-process tests.

Run as ``python -m tests.layers.database_worker CHANNEL RECEIVERS`` with the
environment from ``database_fixtures.database_env``.  It prints ``ready``
once its receivers wait, then, when each receiver has taken one message
``{"stop": true}``, a JSON list of the ``n`` of every other message it got.

``python -m tests.layers.database_worker CHANNEL RECEIVERS HANDED [CONFIG]``
is a worker about to be killed: each receiver takes ``HANDED`` messages and
then keeps them, like a consumer that started on its message and hangs.
It prints one JSON line, ``{"handed": [n, ...]}``, the messages its
receivers got, and waits to be killed.
``CONFIG`` is the layer's configuration as JSON.
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

    from tests.layers.helpers import database_receiving
    from tests.support.waiting import eventually

    tasks = [asyncio.ensure_future(receive_until_stopped()) for _ in range(receivers)]
    await eventually(lambda: database_receiving(layer, channel, receivers), 30)
    print("ready", flush=True)
    await asyncio.gather(*tasks)
    await layer.close()
    print(json.dumps(got), flush=True)


async def hold(channel: str, receivers: int, handed: int, config: dict) -> None:
    """Take ``handed`` messages per receiver, report, and wait for SIGKILL."""
    from channels_app.layers.database import DatabaseChannelLayer

    layer = DatabaseChannelLayer(**{"capacity": 100_000, **config})
    got: list[int] = []

    async def receive_then_hang() -> None:
        for _ in range(handed):
            got.append((await layer.receive(channel))["n"])

    await asyncio.gather(*(receive_then_hang() for _ in range(receivers)))
    print(json.dumps({"handed": got}), flush=True)
    await asyncio.get_running_loop().create_future()  # until killed


if __name__ == "__main__":
    configure()
    if len(sys.argv) > 3:
        config = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
        asyncio.run(hold(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), config))
    else:
        asyncio.run(main(sys.argv[1], int(sys.argv[2])))
