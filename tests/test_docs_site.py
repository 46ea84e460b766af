"""The documentation site builds with ``mkdocs build --strict``: a broken link, a page missing from
the navigation or an API reference that does not resolve fails the build."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_docs_site_builds_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    api = (site / "api" / "index.html").read_text()
    for name in (
        "create_run.create_run",
        "create_run.RunController",
        "tool_calls.ToolCallBatch",
        "assistant_stream_chunk.TextDeltaChunk",
        "serialization.DataStreamResponse",
        "resumable.create_resumable_stream_context",
        "demo.create_app",
    ):
        assert f'id="assistant_stream_ce.{name}"' in api, name
    assert (site / "demo" / "index.html").exists()
