"""Progress of a batch run: a bar on a terminal, plain periodic log lines otherwise, and peak memory."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Progress", "peak_rss_mib"]


def peak_rss_mib() -> dict[str, float]:
    """Peak resident memory (MiB) of this process and of its largest finished child (worker)."""
    scale = 1024.0 if sys.platform != "darwin" else 1024.0 * 1024.0
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / scale
    return {"main": round(own, 1), "largest_worker": round(children, 1)}


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """Counts molecules and conformers; shows a tqdm bar (``bar=True``) or writes a log line every
    ``log_every`` seconds through ``say``; both give molecules per second and, when ``total`` (an
    estimate of the molecules to do) is known, an ETA."""

    def __init__(self, *, bar: bool, total: int | None, say: Callable[[str], None], log_every: float = 30.0,
                 quiet: bool = False) -> None:
        self.start = time.perf_counter()
        self.total = total
        self.say = say
        self.log_every = log_every
        self.quiet = quiet
        self.done = self.ok = self.failed = self.conformers = 0
        self._last_log = self.start
        self._bar: Any = None
        if bar and not quiet:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="mol", file=sys.stderr, dynamic_ncols=True, desc="molecules",
                             smoothing=0.1)

    def write(self, message: str) -> None:
        """A message that does not break the bar."""
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            self.say(message)

    def update(self, ok: int, failed: int, conformers: int) -> None:
        self.done += ok + failed
        self.ok += ok
        self.failed += failed
        self.conformers += conformers
        if self._bar is not None:
            self._bar.update(ok + failed)
            self._bar.set_postfix(confs=self.conformers, failed=self.failed, refresh=False)
            return
        now = time.perf_counter()
        if not self.quiet and now - self._last_log >= self.log_every:
            self._last_log = now
            self.say(self.line())

    def line(self) -> str:
        """``molgen: 1200 molecules (1150 ok, 50 failed), 11500 conformers, 35.1 mol/s, ETA ~3m12s``."""
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = self.done / elapsed
        text = (f"molgen: {self.done} molecules ({self.ok} ok, {self.failed} failed), {self.conformers} conformers, "
                f"{rate:.1f} mol/s, {_duration(elapsed)} elapsed")
        if self.total and rate > 0:
            text += f", ETA ~{_duration(max(0, self.total - self.done) / rate)}"
        return text

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start
