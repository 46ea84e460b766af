#!/usr/bin/env python3
"""Run assistant-stream 0.0.36's own test suite against assistant_stream_ce.

The sdist comes from the package index (``pip download``), checked against a
pinned sha256 and cached outside the repository. Its ``tests/`` folder is
copied to a temporary directory, ``assistant_stream`` is renamed to
``assistant_stream_ce`` in it, and pytest runs it:

- on asyncio, as 0.0.36 runs it: every test must pass, except those listed in
  the table of docs/compatibility.md (each row names the deliberate difference
  it hits). A listed test that passes fails the check too, so the table only
  holds what still differs;
- on trio, for information: the outcome is reported, never fails the check.

A redis-server on a free loopback port (when one is installed) lets the
Redis store tests run instead of skipping.

Usage: scripts/upstream_tests.py [--python PYTHON]
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

VERSION = "0.0.36"
SDIST = f"assistant_stream-{VERSION}.tar.gz"
SDIST_SHA256 = "87e0878d141f34121bd21386da80dcb7ae296b160c95cf53129fc1a413caa597"
REPO = Path(__file__).resolve().parent.parent
TABLE = REPO / "docs" / "compatibility.md"
TABLE_HEADING = "## Upstream tests that fail on purpose"
RUN_TIMEOUT = 600  # seconds per backend; the suite takes a few seconds

# Tests that cannot run outside 0.0.36's monorepo: they read files of the JavaScript package
# that the sdist does not ship, so they fail against 0.0.36 itself.
NOT_RUNNABLE = {
    "tests/test_interop_fixture.py::test_encoder_matches_committed_fixture": (
        "compares with packages/assistant-stream/.../python-encoder.sse, which is not in the sdist"
    ),
}

# Runs on one backend instead of the anyio plugin's default (every installed one), and fails a
# test that hangs instead of the whole run.
CONFTEST = """\
import os
import signal

import pytest


@pytest.fixture
def anyio_backend():
    return os.environ["UPSTREAM_ANYIO_BACKEND"]


def _hung(signum, frame):
    raise TimeoutError("the test ran for more than 30 s")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    previous = signal.signal(signal.SIGALRM, _hung)
    signal.alarm(30)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
"""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "assistant-stream-ce"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def obtain_sdist(python: str) -> Path:
    """The pinned sdist, from the cache or downloaded into it; exits if its hash differs."""
    target = cache_dir() / SDIST
    if target.exists() and sha256(target) == SDIST_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as download:
        subprocess.run(
            [
                python,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"assistant-stream=={VERSION}",
                "-d",
                download,
            ],
            check=True,
        )
        fetched = Path(download) / SDIST
        digest = sha256(fetched)
        if digest != SDIST_SHA256:
            sys.exit(f"{SDIST}: sha256 {digest} does not match the pinned {SDIST_SHA256}")
        shutil.move(fetched, target)
    return target


def extract_tests(sdist: Path, into: Path) -> Path:
    """Copy the sdist's tests/ to ``into``/tests with the import name rewritten."""
    prefix = f"assistant_stream-{VERSION}/tests/"
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(prefix) and m.isfile()]
        for member in members:
            relative = Path("tests") / member.name[len(prefix) :]
            source = archive.extractfile(member)
            assert source is not None
            text = source.read().decode()
            if relative.suffix == ".py":
                text = re.sub(r"\bassistant_stream\b", "assistant_stream_ce", text)
            (into / relative).parent.mkdir(parents=True, exist_ok=True)
            (into / relative).write_text(text)
    (into / "conftest.py").write_text(CONFTEST)
    return into / "tests"


def parse_table(markdown: str) -> dict[str, str]:
    """Test id -> difference, from the table under TABLE_HEADING."""
    _, found, rest = markdown.partition(TABLE_HEADING)
    if not found:
        sys.exit(f"{TABLE}: no section {TABLE_HEADING!r}")
    rows: dict[str, str] = {}
    for line in rest.splitlines():
        if line.startswith("## "):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2 or not cells[0].startswith("`"):
            continue
        rows[cells[0].strip("`")] = cells[1]
    return rows


def uses_asyncio(tests_dir: Path) -> set[str]:
    """Ids of the tests that use the ``asyncio`` module, in their body or through a helper of their module."""
    found: set[str] = set()
    for path in sorted(tests_dir.glob("test_*.py")):
        module = ast.parse(path.read_text()).body
        functions = [node for node in module if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        names = {node.name: {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} for node in functions}
        helpers = {name for name, used in names.items() if "asyncio" in used}
        for name, used in names.items():
            if name.startswith("test") and ("asyncio" in used or used & helpers):
                found.add(f"tests/{path.name}::{name}")
    return found


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str | None]:
    """A throwaway redis-server's URL, or None when none is installed (the Redis tests then skip)."""
    executable = shutil.which("redis-server")
    if executable is None:
        yield None
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = subprocess.Popen([*args, "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def run_pytest(python: str, root: Path, backend: str, env: dict[str, str]) -> dict[str, str]:
    """Test id -> outcome (passed, failed, skipped) of one pytest run on ``backend``.

    Its own output goes to ``output-<backend>.txt`` in ``root``: the expected failures would
    bury what matters, and the test command's last pytest summary stays this package's own.
    """
    report = root / f"report-{backend}.xml"
    deselect = [arg for test_id in NOT_RUNNABLE for arg in ("--deselect", test_id)]
    command = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--junitxml", str(report)]
    command += ["--continue-on-collection-errors", "--tb=short", *deselect, "tests"]
    try:
        with (root / f"output-{backend}.txt").open("w") as output:
            subprocess.run(
                command,
                cwd=root,
                env={**env, "UPSTREAM_ANYIO_BACKEND": backend},
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT,
            )
    except subprocess.TimeoutExpired:
        sys.exit(f"the upstream tests on {backend} ran longer than {RUN_TIMEOUT}s (a test hangs)")
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        test_id = (classname.replace(".", "/") + ".py::" + name) if classname else name.replace(".", "/") + ".py"
        if case.find("failure") is not None or case.find("error") is not None:
            outcomes[test_id] = "failed"
        elif case.find("skipped") is not None:
            outcomes[test_id] = "skipped"
        else:
            outcomes[test_id] = "passed"
    return outcomes


def check_asyncio(outcomes: dict[str, str], table: dict[str, str]) -> list[str]:
    """What breaks the drop-in promise on asyncio: unlisted failures, listed passes, rows for no test."""
    problems = []
    for test_id, outcome in sorted(outcomes.items()):
        if outcome == "failed" and test_id not in table:
            problems.append(f"FAILS and is not in the compatibility table: {test_id}")
        if outcome == "passed" and test_id in table:
            problems.append(f"PASSES but the compatibility table lists it (remove the row): {test_id}")
    for test_id in sorted(table.keys() - outcomes.keys()):
        problems.append(f"the compatibility table lists a test that did not run: {test_id}")
    return problems


def report_trio(outcomes: dict[str, str], on_asyncio: dict[str, str], asyncio_bodies: set[str]) -> None:
    """How the suite fares on trio: failures that asyncio shares, that use asyncio in the test, and the rest."""
    failed = sorted(test_id for test_id, outcome in outcomes.items() if outcome == "failed")
    shared = [test_id for test_id in failed if on_asyncio.get(test_id) == "failed"]
    uses_asyncio = [test_id for test_id in failed if test_id not in shared and test_id in asyncio_bodies]
    rest = [test_id for test_id in failed if test_id not in shared and test_id not in asyncio_bodies]
    counts = {outcome: sum(1 for o in outcomes.values() if o == outcome) for outcome in ("passed", "failed", "skipped")}
    print(
        f"\ntrio (reported only): {counts['failed']} of {sum(counts.values())} fail ({counts['skipped']} skipped); "
        f"{len(shared)} of them fail on asyncio too, {len(uses_asyncio)} use asyncio in the test itself"
    )
    for test_id in rest:
        print(f"  fails on trio only, without asyncio in the test: {test_id}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable, help="the interpreter that has assistant_stream_ce")
    args = parser.parse_args()

    table = parse_table(TABLE.read_text())
    sdist = obtain_sdist(args.python)
    with tempfile.TemporaryDirectory(prefix="upstream-tests-") as temp:
        root = Path(temp)
        tests_dir = extract_tests(sdist, root)
        with redis_server(root) as redis_url:
            env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_TESTS", "PYTHONPATH")}
            if redis_url is not None:
                env["REDIS_URL"] = redis_url
            print(f"assistant-stream {VERSION}'s tests (checked on asyncio, reported on trio)")
            asyncio_outcomes = run_pytest(args.python, root, "asyncio", env)
            trio_outcomes = run_pytest(args.python, root, "trio", env)
        report_trio(trio_outcomes, asyncio_outcomes, uses_asyncio(tests_dir))
        problems = check_asyncio(asyncio_outcomes, table)
        if problems:  # what pytest said, to see why
            print((root / "output-asyncio.txt").read_text(), file=sys.stderr)

    for test_id, why in NOT_RUNNABLE.items():
        print(f"not run (fails against {VERSION} too): {test_id}: {why}")
    passed = sum(1 for outcome in asyncio_outcomes.values() if outcome == "passed")
    listed = sum(1 for test_id, outcome in asyncio_outcomes.items() if outcome == "failed" and test_id in table)
    print(f"asyncio: {passed} passed, {listed} fail as the compatibility table lists ({len(table)} rows)")
    if not asyncio_outcomes:
        problems.append("no upstream test ran")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
