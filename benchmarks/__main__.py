"""Run the benchmarks and write RESULTS.md and ratios.png: ``python -m benchmarks [--quick]``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import machine, report
from .plan import STACKS, TARGETS, Case, plan

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _worker(spec: dict[str, Any], profile: Path | None = None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.worker", json.dumps(spec)]
    if profile is not None:
        cmd += ["--profile", str(profile)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark {spec} failed:\n{done.stderr[-4000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _best_run(spec: dict[str, Any], repeat: int) -> dict[str, Any]:
    """The run that took the least CPU time: other load on the machine only ever adds to it."""
    runs = [_worker(spec) for _ in range(repeat)]
    return min(runs, key=lambda run: run.get("cpu_seconds", 0.0))


def run_case(case: Case) -> dict[str, Any]:
    results: dict[str, Any] = {}
    targets = list(TARGETS)
    if case.floor:
        backends = ("asyncio", "trio") if case.params.get("pattern") == "yield" else ("asyncio",)
        targets += [("floor", backend) for backend in backends]
    if case.handoff:
        targets += [("handoff", "asyncio"), ("handoff", "trio")]
    for lib, backend in targets:
        spec = {"workload": case.workload, "lib": lib, "backend": backend, "params": case.params}
        started = time.perf_counter()
        results[f"{lib}/{backend}"] = _best_run(spec, case.repeat)
        print(f"  {case.name:<20} {lib:>7}/{backend:<8} {time.perf_counter() - started:6.1f}s", flush=True)
    return results


def profile(case: Case, out: Path) -> str:
    """A pyinstrument profile of our library (asyncio) on a quarter of ``case``; the text is also saved in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{case.name}.txt"
    params = {k: v // 4 if type(v) is int and v >= 40 else v for k, v in case.params.items()}
    _worker({"workload": case.workload, "lib": "ours", "backend": "asyncio", "params": params}, path)
    return path.read_text()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every benchmark")
    parser.add_argument("--no-http", action="store_true", help="in-process benchmarks only")
    parser.add_argument("--no-profile", action="store_true", help="do not profile the workloads that miss a goal")
    parser.add_argument("--only", help="comma-separated in-process cases to run (default: all)")
    parser.add_argument("--out", type=Path, default=HERE, help="where RESULTS.md and ratios.png go")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from results.json")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    raw = args.out / "results.json"
    if args.report_only:
        report.write(json.loads(raw.read_text()), args.out)
        return

    chosen = plan(args.quick)
    only = set(args.only.split(",")) if args.only else None
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": machine.describe(),
        "quick": args.quick,
        "inprocess": {},
        "http": {},
        "http_sizes": chosen.http,
        "cases": {c.name: c.params for c in chosen.cases},
        "profiles": {},
    }
    print("in-process:", flush=True)
    for case in chosen.cases:
        if only is None or case.name in only:
            results["inprocess"][case.name] = run_case(case)
    if not args.no_http:
        from . import http_bench

        print("http:", flush=True)
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        for stack in dict.fromkeys(stack for _, stack in STACKS):
            t0 = time.perf_counter()
            libs = [lib for lib, on in STACKS if on == stack]
            for lib, figures in http_bench.run_stack(libs, stack, chosen.http).items():
                results["http"][f"{lib}/{stack}"] = figures
            print(f"  {stack:<18} {time.perf_counter() - t0:6.1f}s", flush=True)
    results["seconds"] = time.perf_counter() - started
    results["load_end"] = machine.load()
    raw.write_text(json.dumps(results, indent=1) + "\n")
    if not args.no_profile:
        for stale in (args.out / "profiles").glob("*.txt"):
            stale.unlink()
        for case in chosen.cases:
            if case.name in results["inprocess"] and case.name in report.unmet_cases(results):
                print(f"profiling {case.name}", flush=True)
                results["profiles"][case.name] = profile(case, args.out / "profiles")
        for stack in report.unmet_stacks(results) if results["http"] else []:
            from . import http_bench

            print(f"profiling the HTTP server (ours, {stack})", flush=True)
            path = args.out / "profiles" / f"http-ours-{stack}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            http_bench.profile_server("ours", stack, min(chosen.http["concurrency"]), chosen.http, path)
            results["profiles"][f"http-ours-{stack}"] = path.read_text()
    results["seconds"] = time.perf_counter() - started
    raw.write_text(json.dumps(results, indent=1) + "\n")
    report.write(results, args.out)
    print(f"wrote {args.out / 'RESULTS.md'} and {args.out / 'ratios.png'} in {results['seconds']:.0f}s", flush=True)


if __name__ == "__main__":
    main()
