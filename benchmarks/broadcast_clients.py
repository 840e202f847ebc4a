"""WebSocket clients for benchmarks/ws_broadcast.py, in a process of their own.

``python broadcast_clients.py URL CLIENTS``: opens ``CLIENTS`` connections,
prints ``ready``, then for every broadcast ``seq:N`` prints
``{"seq": N, "at": <time when the last client had it>}`` once all have it.
On a line ``stop`` on stdin it prints ``{"duplicates": D, "missing": M}``:
copies received beyond the first, and (client, broadcast) pairs never seen.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

import websockets


async def main(url: str, clients: int) -> None:
    seen: Counter = Counter()  # (client, seq) -> copies
    complete: Counter = Counter()  # seq -> clients that have it

    async def client(number: int, connected: asyncio.Future) -> None:
        async with websockets.connect(url, max_queue=None) as socket:
            connected.set_result(None)
            async for text in socket:
                seq = int(text.split(":", 1)[1])
                seen[(number, seq)] += 1
                if seen[(number, seq)] == 1:
                    complete[seq] += 1
                    if complete[seq] == clients:
                        print(json.dumps({"seq": seq, "at": time.time()}), flush=True)

    loop = asyncio.get_running_loop()
    tasks = []
    for start in range(0, clients, 50):
        batch = [loop.create_future() for _ in range(start, min(start + 50, clients))]
        tasks += [
            asyncio.ensure_future(client(start + offset, future))
            for offset, future in enumerate(batch)
        ]
        await asyncio.wait_for(asyncio.gather(*batch), 60)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    seqs = {seq for _, seq in seen} | set(complete)
    duplicates = sum(copies - 1 for copies in seen.values())
    missing = sum(clients - complete[seq] for seq in seqs)
    print(json.dumps({"duplicates": duplicates, "missing": missing}), flush=True)
    for task in tasks:
        task.cancel()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
