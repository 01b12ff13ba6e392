"""A one-line progress bar on stderr: done/total, percent, images/s and time left."""

import sys
import time


class Progress:
    """Progress of one metric pass.

    Args:
        total: items expected.
        label: what is being counted, shown first ("fid fakes").
        unit: item name for the rate ("img").
        stream: where to write; None disables output.
        min_interval: seconds between redraws (a terminal gets `\\r` redraws, a log file one
            line per `min_interval * 10` seconds).
    """

    def __init__(self, total, label, unit="img", stream=sys.stderr, min_interval=0.5):
        self.total = max(int(total), 1)
        self.label = label
        self.unit = unit
        self.stream = stream
        self.done = 0
        self._start = time.monotonic()
        self._last = 0.0
        self._written_at = -1
        self._tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self._interval = min_interval if self._tty else min_interval * 10

    @property
    def rate(self):
        """Items per second so far."""
        elapsed = time.monotonic() - self._start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self):
        rate = self.rate
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        left_text = f"{left:6.0f}s left" if left == left else "     ?s left"
        return (f"{self.label:<18} {self.done:>7}/{self.total:<7} {100.0 * self.done / self.total:5.1f}% "
                f"{rate:8.1f} {self.unit}/s {left_text}")

    def update(self, count):
        self.done += int(count)
        now = time.monotonic()
        if self.stream is not None and now - self._last >= self._interval:
            self._last = now
            self._write(final=False)

    def close(self):
        if self.stream is not None and (self._tty or self._written_at != self.done):
            self._write(final=True)

    def _write(self, final):
        self._written_at = self.done
        if self._tty:
            self.stream.write("\r" + self.line() + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()
