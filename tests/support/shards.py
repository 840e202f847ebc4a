"""Run pytest as N shards side by side and report them together.

``python -m tests.support.shards [-n N] [pytest arguments]`` (``make
test-fast`` runs ``-n 2 --fast -q``) starts N pytest processes, the K-th with
``--shard=K/N``, waits for all of them and prints each one's output in turn;
the exit status is the first non-zero one, else 0.

Running side by side is safe because runs never share state: each makes its
own test databases and Redis key prefixes (see the README).  So the
environment given to the shards drops ``CHANNELS_APP_PG_TEST_DB``, which
would make them share a PostgreSQL test database.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--shards", type=int, default=2)
    options, pytest_args = parser.parse_known_args(argv)
    env = {k: v for k, v in os.environ.items() if k != "CHANNELS_APP_PG_TEST_DB"}
    started = time.monotonic()
    runs = []
    for k in range(1, options.shards + 1):
        output = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
        command = [
            sys.executable,
            "-m",
            "pytest",
            f"--shard={k}/{options.shards}",
            *pytest_args,
        ]
        process = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        runs.append((k, process, output))
    status = 0
    for k, process, output in runs:
        code = process.wait()
        output.seek(0)
        print(f"===== shard {k}/{options.shards}: exit status {code} =====")
        sys.stdout.flush()
        sys.stdout.buffer.write(output.read())
        sys.stdout.flush()
        output.close()
        status = status or code
    elapsed = time.monotonic() - started
    print(f"===== {options.shards} shards in {elapsed:.0f}s, exit status {status}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
