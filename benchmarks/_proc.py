"""Process memory and CPU figures, from the standard library only (Linux /proc and clocks, else getrusage)."""

from __future__ import annotations

import os
import resource
import sys
import time

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss(pid: int | None = None) -> int:
    """Resident set size of ``pid`` (default: this process) in bytes."""
    try:
        with open(f"/proc/{pid or 'self'}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        if pid is not None:
            raise
        return max_rss()


def max_rss() -> int:
    """Peak resident set size of this process so far, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def cpu_seconds(pid: int | None = None) -> float:
    """User plus system CPU time of ``pid`` (default: this process) so far, in seconds.

    Another process's is read from its CPU-time clock (Linux, nanoseconds): /proc's figure counts
    10 ms ticks, which is 0.1 ms a stream when 100 streams share it.
    """
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        # What clock_getcpuclockid(pid) returns on Linux: the process-wide clock of ``pid``'s CPU time.
        return time.clock_gettime(((~pid) << 3) | 2)
    except (OSError, AttributeError):
        pass
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
