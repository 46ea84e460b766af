"""One measurement in a fresh process: ``python -m benchmarks.worker SPEC_JSON [--profile FILE]``.

SPEC_JSON is ``{"workload", "lib", "backend", "params"}`` (``lib``: ``ours``, ``ref``, or
``floor``/``handoff`` for :mod:`benchmarks.floor`); the figures are
printed as one JSON line. A fresh process per measurement keeps memory figures
and garbage from one library out of the other's numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import floor, workloads
from .libs import load


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["lib"] in floor.LIBS:
        return floor.run(spec["workload"], spec["backend"], spec["params"], handoff=spec["lib"] == "handoff")
    return workloads.run(spec["workload"], spec["lib"], spec["backend"], spec["params"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("spec")
    parser.add_argument("--profile", help="write a pyinstrument text profile here")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec)
    if args.profile:
        from pyinstrument import Profiler

        if spec["lib"] not in floor.LIBS:
            load(spec["lib"])  # imports stay out of the profile
        profiler = Profiler(interval=0.0005, async_mode="disabled")
        with profiler:
            figures = measure(spec)
        with open(args.profile, "w") as f:
            f.write(profiler.output_text(unicode=True, color=False, show_all=False))
    else:
        figures = measure(spec)
    json.dump(figures, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
