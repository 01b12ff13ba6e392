"""Progress reporting: the training tick line (`progress_line`, `format_time`), a terminal bar
(`ProgressBar`) and a count/total line with rate and time left (`Progress`)."""

import sys
import time


def format_time(seconds):
    """The original's time format: '45s', '3m 07s', '2h 05m 09s', '1d 03h 20m'."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 60 * 60:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 24 * 60 * 60:
        return f"{s // 3600}h {(s // 60) % 60:02d}m {s % 60:02d}s"
    return f"{s // 86400}d {(s // 3600) % 24:02d}h {(s // 60) % 60:02d}m"


def format_count(value):
    """12345 -> '12,345'."""
    return f"{value:,}"


def progress_line(tick, kimg, lod, resolution, minibatch, total_sec, sec_per_tick, sec_per_kimg,
                  img_per_sec, maintenance_sec):
    """One fixed-width line per tick, the original's fields plus resolution and img/s."""
    return (f"tick {tick:<5d} kimg {kimg:<8.1f} lod {lod:<5.2f} resolution {resolution:<4d} "
            f"minibatch {minibatch:<4d} time {format_time(total_sec):<12s} "
            f"sec/tick {sec_per_tick:<7.1f} sec/kimg {sec_per_kimg:<7.2f} "
            f"img/s {img_per_sec:<7.1f} maintenance {maintenance_sec:.1f}")


def _is_terminal(stream):
    return bool(getattr(stream, "isatty", lambda: False)())


class ProgressBar:
    """A one-line bar on stderr, only when stderr is an interactive terminal; redrawn at most
    every `interval` seconds and erased before each progress line."""

    def __init__(self, stream=None, interval=0.5, width=30):
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = _is_terminal(self._stream)
        self._interval = interval
        self._width = width
        self._last = 0.0
        self._shown = False

    def update(self, fraction, text):
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        filled = int(round(self._width * min(max(fraction, 0.0), 1.0)))
        bar = "#" * filled + "." * (self._width - filled)
        self._stream.write(f"\r[{bar}] {100 * fraction:5.1f}% {text}\x1b[K")
        self._stream.flush()
        self._shown = True

    def clear(self):
        if self.enabled and self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = False


class Progress:
    """Counts items towards `total` and reports them with rate and time left:
    'Writing: 1,024 / 60,000 img (1.7%), 812 img/s, 72 s left'.

    Args:
        label: what is being done or counted, shown first ("Writing", "fid fakes").
        total: items expected; None when unknown (no percent, no time left).
        unit: item name for the count and rate ("img", "pairs").
        stream: text stream written to; None = sys.stderr at construction time.
        enabled: False writes nothing (counting still works).
        interval: seconds between lines; default 0.1 on a terminal (redrawn in place with
            '\\r'), 10 otherwise (one plain line each, so logs stay readable).

    Use as a context manager, or call `close()` to write the final line.
    """

    def __init__(self, label, total=None, unit="img", stream=None, enabled=True, interval=None):
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.is_tty = _is_terminal(self.stream)
        self.interval = interval if interval is not None else (0.1 if self.is_tty else 10.0)
        self.count = 0
        self.start = time.monotonic()
        self._last = self.start
        self._drawn = False
        self._written_count = None

    @property
    def elapsed(self):
        return time.monotonic() - self.start

    @property
    def rate(self):
        """Items per second so far."""
        elapsed = self.elapsed
        return self.count / elapsed if elapsed > 0 else 0.0

    def line(self):
        rate = f"{self.rate:,.0f} {self.unit}/s"
        if not self.total:
            return f"{self.label}: {format_count(self.count)} {self.unit}, {rate}"
        percent = 100.0 * self.count / self.total
        remaining = (self.total - self.count) / self.rate if self.rate > 0 else float("nan")
        left = f", {remaining:.0f} s left" if remaining == remaining else ""
        done = f"{format_count(self.count)} / {format_count(self.total)} {self.unit}"
        return f"{self.label}: {done} ({percent:.1f}%), {rate}{left}"

    def update(self, amount=1):
        self.count += int(amount)
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._write(final=False)

    def close(self):
        """Writes the final line (count, rate) unless a plain line already showed this count."""
        if self.is_tty or (self.count and self._written_count != self.count):
            self._write(final=True)

    def _write(self, final):
        if not self.enabled:
            return
        self._written_count = self.count
        if self.is_tty:
            self.stream.write("\r\x1b[K" + self.line() + ("\n" if final else ""))
            self._drawn = not final
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if exc_info[0] is None:
            self.close()
        elif self._drawn and self.enabled:
            self.stream.write("\n")
            self.stream.flush()
