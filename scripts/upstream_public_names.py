#!/usr/bin/env python3
"""Write tests/data/upstream_public_names.txt: assistant-stream 0.0.36's public module paths and names.

Reads the modules of 0.0.36's wheel (downloaded with pip, not installed) and
lists, under this package's import name, every public module and every public
name a module defines or lists in ``__all__`` (module loggers left out), one
``module`` or ``module:name`` per line. Run it once; tests/test_public_api.py
checks that each of them imports here.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

VERSION = "0.0.36"
OUTPUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "upstream_public_names.txt"


def defined_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            assert isinstance(node.value, (ast.List, ast.Tuple))
            names |= {elt.value for elt in node.value.elts if isinstance(elt, ast.Constant)}
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name) and t.id != "__all__"}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {name for name in names if not name.startswith("_") and name != "logger"}


def main() -> None:
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as download:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:"]
        subprocess.run([*command, f"assistant-stream=={VERSION}", "-d", download], check=True)
        (wheel,) = Path(download).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            sources = [n for n in archive.namelist() if n.startswith("assistant_stream/") and n.endswith(".py")]
            for path in sorted(sources):
                parts = path[: -len(".py")].split("/")
                if parts[-1] == "__init__":
                    parts.pop()
                if any(part.startswith("_") for part in parts):
                    continue
                module = ".".join(["assistant_stream_ce", *parts[1:]])
                lines.append(module)
                names = defined_names(ast.parse(archive.read(path).decode()))
                lines += [f"{module}:{name}" for name in sorted(names)]
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
