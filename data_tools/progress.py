"""A progress line with images/s on stderr: redrawn in place on a terminal, plain lines otherwise."""

import sys
import time


def format_count(value):
    return f"{value:,}"


class Progress:
    """Counts items towards `total` (None = unknown) and reports rate and remaining time.

    On a terminal the line is redrawn at most 10 times a second; on a pipe or file one plain line
    is written every `plain_interval` seconds, so logs stay readable.
    """

    def __init__(self, label, total=None, unit="img", stream=None, plain_interval=10.0):
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = 0.1 if self.is_tty else plain_interval
        self.count = 0
        self.start = time.monotonic()
        self._last = self.start
        self._drawn = False

    @property
    def elapsed(self):
        return time.monotonic() - self.start

    @property
    def rate(self):
        elapsed = self.elapsed
        return self.count / elapsed if elapsed > 0 else 0.0

    def _line(self):
        rate = self.rate
        if self.total:
            percent = 100.0 * self.count / self.total
            remaining = (self.total - self.count) / rate if rate > 0 else float("nan")
            eta = f", {remaining:.0f} s left" if remaining == remaining else ""
            return (f"{self.label}: {format_count(self.count)} / {format_count(self.total)} {self.unit} "
                    f"({percent:.0f}%), {rate:,.0f} {self.unit}/s{eta}")
        return f"{self.label}: {format_count(self.count)} {self.unit}, {rate:,.0f} {self.unit}/s"

    def update(self, amount=1):
        self.count += amount
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._write()

    def _write(self):
        if self.is_tty:
            self.stream.write("\r\033[K" + self._line())
            self._drawn = True
        else:
            self.stream.write(self._line() + "\n")
        self.stream.flush()

    def close(self):
        """Writes the final line (count, rate) and ends it."""
        if self.is_tty:
            self.stream.write("\r\033[K" + self._line() + "\n")
        elif self.count:
            self.stream.write(self._line() + "\n")
        self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.is_tty and self._drawn and exc_info[0] is not None:
            self.stream.write("\n")
            self.stream.flush()
        elif exc_info[0] is None:
            self.close()
