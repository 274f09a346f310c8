"""Shared by the benchmark scripts: machine description and RESULTS.md sections.

Each benchmark owns one ``## <title>`` section of ``benchmarks/RESULTS.md`` and replaces it
when it runs again, so the file always shows the latest figures of every benchmark.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import time
from pathlib import Path

import psutil

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    """One line: CPU model, cores, RAM, Python, date, git commit."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
            cwd=Path(__file__).parent, check=False,
        ).stdout.strip() or "?"
        # code or dependencies changed since that commit (RESULTS.md aside) are said, not hidden
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "jetlib", "schemas", "benchmarks", "pyproject.toml",
             ":!benchmarks/RESULTS.md"],
            capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, check=False,
        ).stdout.strip()
        if changed and commit != "?":
            commit += " with uncommitted changes"
    except OSError:
        commit = "?"
    ram = psutil.virtual_memory().total / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {ram:.0f} GiB RAM, Python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d')}, commit {commit}")


def record(title: str, body: str) -> None:
    """Replace (or append) the ``## title`` section of RESULTS.md with ``body``."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nWritten by the scripts in this folder; re-run one to refresh its section.\n"
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    RESULTS.write_text(text)
