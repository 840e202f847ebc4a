"""Run one benchmark on channels_app and on Django Channels 4, side by side.

Every benchmark in this folder is a plain script that hands an async
``measure(impl, args)`` function to :func:`main`.  ``impl`` is ``"ours"`` or
``"channels"``; :func:`import_impl` turns a ``channels_app.*`` dotted path
into the matching ``channels.*`` one, so the same code measures both.

``--impl ours`` runs in this interpreter (the project's ``.venv``).
``--impl channels`` re-runs the script in ``.venv-bench-channels``, a
virtualenv holding Django Channels 4 and nothing of ours, created with pip on
first use (it is gitignored).  ``--impl both`` (the default) runs the two one
after the other, each in a fresh process, and prints them in one table.
``--runs N`` alternates the two N times and shows each metric's median, with
every run's value below the table: on a shared 2-core machine a single pair
of runs can differ by a fifth from the next.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import math
import os
import statistics
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHANNELS_VENV = ROOT / ".venv-bench-channels"
CHANNELS_REQUIREMENTS = ("channels>=4,<5",)
IMPLS = ("ours", "channels")
PACKAGE = {"ours": "channels_app", "channels": "channels"}


@dataclass
class Result:
    """One measured number; ``higher_is_better`` decides how ratios read."""

    name: str
    value: float
    unit: str
    higher_is_better: bool = True


def import_impl(dotted: str, impl: str) -> Any:
    """Import ``module.attr``, reading ``channels_app`` as ``channels`` for Channels."""
    first, _, rest = dotted.partition(".")
    if first == "channels_app":
        dotted = PACKAGE[impl] + ("." + rest if rest else "")
    module_name, _, attr = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        return importlib.import_module(dotted)


def setup_django(impl: str, **settings: Any) -> None:
    """Configure minimal Django settings with the implementation's app installed."""
    import django
    from django.conf import settings as django_settings

    if not django_settings.configured:
        settings.setdefault("INSTALLED_APPS", [PACKAGE[impl]])
        settings.setdefault("SECRET_KEY", "benchmark-only")
        django_settings.configure(**settings)
        django.setup()


def add_layer_arguments(parser: argparse.ArgumentParser) -> None:
    """``--layer`` (a dotted path for :func:`import_impl`) and ``--config``."""
    parser.add_argument(
        "--layer",
        default="channels_app.layers.InMemoryChannelLayer",
        help="dotted path of the layer class (default: %(default)s)",
    )
    parser.add_argument(
        "--config", default="{}", help="the layer's CONFIG as JSON (default: {})"
    )


def channels_python(requirements: Iterable[str]) -> Path:
    """The Channels virtualenv's interpreter, creating or updating it as needed."""
    wanted = "\n".join(sorted(set(requirements)))
    python = CHANNELS_VENV / "bin" / "python"
    stamp = CHANNELS_VENV / ".requirements"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"Preparing {CHANNELS_VENV.name} with: {wanted}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(CHANNELS_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *sorted(set(requirements))],
        check=True,
    )
    stamp.write_text(wanted)
    return python


def _in_channels_venv() -> bool:
    return Path(sys.prefix).resolve() == CHANNELS_VENV.resolve()


def _child_argv(argv: Sequence[str], impl: str) -> list[str]:
    """``argv`` with any ``--impl`` option replaced by ``--impl impl``."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--impl":
            skip = True
        elif not arg.startswith("--impl="):
            kept.append(arg)
    return [*kept, "--impl", impl]


def _run_child(python: Path | str, script: str, argv: list[str]) -> dict:
    completed = subprocess.run(
        [str(python), script, *argv, "--json"],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} failed with exit code {completed.returncode}"
        )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _format(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def _ratio(ours: dict, theirs: dict) -> str:
    values = (ours["value"], theirs["value"])
    if not all(values) or any(math.isnan(v) for v in values):
        return "-"  # nothing measured (a run where clients could not connect)
    if ours["higher_is_better"]:
        factor = ours["value"] / theirs["value"]
    else:
        factor = theirs["value"] / ours["value"]
    return f"{factor:.1f}x {'better' if factor >= 1 else 'worse'}"


def print_table(runs: dict[str, dict]) -> None:
    """Print each run's header, then one row per result with a ratio column."""
    for impl, run in runs.items():
        print(f"{impl:>8}: {run['title']}")
    impls = list(runs)
    rows = [["metric", *impls] + (["ours vs channels"] if len(impls) == 2 else [])]
    # Matched by name: an implementation may measure rows the other cannot
    # (serve's 2-process echo has no Channels counterpart).
    by_name = [{r["name"]: r for r in run["results"]} for run in runs.values()]
    names: list[str] = []
    for run in runs.values():
        names += [r["name"] for r in run["results"] if r["name"] not in names]
    for name in names:
        found = [results.get(name) for results in by_name]
        unit = next(r for r in found if r is not None)["unit"]
        row = [f"{name} ({unit})"]
        row += [_format(r["value"]) if r is not None else "-" for r in found]
        if len(found) == 2:
            pair = found[0] is not None and found[1] is not None
            row.append(_ratio(found[0], found[1]) if pair else "-")
        rows.append(row)
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    for row in rows:
        cells = [cell.rjust(width) for cell, width in zip(row, widths, strict=True)]
        cells[0] = row[0].ljust(widths[0])
        print("  ".join(cells))


def median_run(runs: list[dict]) -> dict:
    """One run whose every value is the median of that metric over ``runs``."""
    results = [
        {
            **first,
            "value": statistics.median(run["results"][i]["value"] for run in runs),
        }
        for i, first in enumerate(runs[0]["results"])
    ]
    return {"title": runs[0]["title"], "results": results}


def print_spread(runs: dict[str, list[dict]]) -> None:
    """Every run's value of every metric, in the order the runs were made."""
    print(f"each of {len(next(iter(runs.values())))} alternating runs:")
    for position, first in enumerate(next(iter(runs.values()))[0]["results"]):
        values = " | ".join(
            f"{impl} "
            + " ".join(_format(run["results"][position]["value"]) for run in impl_runs)
            for impl, impl_runs in runs.items()
        )
        print(f"  {first['name']} ({first['unit']}): {values}")


def main(
    measure: Callable[[str, argparse.Namespace], Awaitable[tuple[str, list[Result]]]],
    *,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    channels_requirements: Iterable[str] = CHANNELS_REQUIREMENTS,
) -> None:
    """Parse the command line and run ``measure`` for one or both implementations.

    ``measure`` returns a title (what was measured, with its configuration)
    and the results, in the same order for both implementations.
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--impl",
        choices=[*IMPLS, "both"],
        default="both",
        help="measure channels_app, Django Channels 4, or both (default)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="with --impl both: alternate the two this many times, show medians",
    )
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args()
    script = inspect.getfile(measure)
    argv = sys.argv[1:]

    if args.impl == "both":
        pythons = {
            "ours": sys.executable,
            "channels": channels_python(channels_requirements),
        }
        runs: dict[str, list[dict]] = {impl: [] for impl in pythons}
        for _ in range(max(1, args.runs)):
            for impl, python in pythons.items():
                runs[impl].append(_run_child(python, script, _child_argv(argv, impl)))
        print_table({impl: median_run(impl_runs) for impl, impl_runs in runs.items()})
        if args.runs > 1:
            print_spread(runs)
        return
    if args.impl == "channels" and not _in_channels_venv():
        python = channels_python(channels_requirements)
        os.execv(str(python), [str(python), script, *argv])

    title, results = asyncio.run(measure(args.impl, args))
    run = {"title": title, "results": [asdict(result) for result in results]}
    if args.json:
        print(json.dumps(run))
    else:
        print_table({args.impl: run})
