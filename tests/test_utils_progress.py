"""progan_tf/utils/progress.py: the training tick line, the terminal bar and the count line."""

import io
import re

import pytest

from progan_tf.utils import progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (45.4, "45s"), (59.6, "1m 00s"), (187, "3m 07s"), (3600, "1h 00m 00s"),
    (7509, "2h 05m 09s"), (86399, "23h 59m 59s"), (98400, "1d 03h 20m")])
def test_format_time_matches_the_original(seconds, text):
    assert progress.format_time(seconds) == text


def test_progress_line_has_the_fields_in_the_originals_layout():
    line = progress.progress_line(tick=3, kimg=480.04, lod=7.5, resolution=8, minibatch=128,
                                  total_sec=4000, sec_per_tick=100.25, sec_per_kimg=0.625,
                                  img_per_sec=1600.0, maintenance_sec=2.25)
    assert re.fullmatch(
        r"tick 3 +kimg 480\.0 +lod 7\.50 +resolution 8 +minibatch 128 +time 1h 06m 40s +"
        r"sec/tick 100\.2 +sec/kimg 0\.62 +img/s 1600\.0 +maintenance 2\.2", line), line
    # Fixed-width columns: a longer tick number does not shift the kimg column.
    other = progress.progress_line(12345, 1.0, 0.0, 1024, 4, 1, 1, 1, 1, 0)
    assert line.index("kimg") == other.index("kimg")


def test_progress_bar_draws_only_on_a_terminal():
    plain = io.StringIO()
    bar = progress.ProgressBar(stream=plain, interval=0)
    bar.update(0.5, "tick 1")
    bar.clear()
    assert plain.getvalue() == ""

    terminal = _Terminal()
    bar = progress.ProgressBar(stream=terminal, interval=0, width=10)
    bar.update(0.5, "tick 1")
    assert "[#####.....]  50.0% tick 1" in terminal.getvalue()
    bar.clear()
    assert terminal.getvalue().endswith("\r\x1b[K")


def test_count_lines_show_count_total_percent_and_rate_and_end_once():
    stream = io.StringIO()
    with progress.Progress("fakes", total=10, stream=stream, interval=0) as counter:
        for _ in range(5):
            counter.update(2)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5  # one per update; close() does not repeat the last count
    assert re.fullmatch(r"fakes: 10 / 10 img \(100\.0%\), [\d,]+ img/s, 0 s left", lines[-1])


def test_count_line_without_a_total_and_with_thousands_separators():
    stream = io.StringIO()
    counter = progress.Progress("Writing", unit="pairs", stream=stream, interval=3600)
    counter.update(12345)
    counter.close()
    assert re.fullmatch(r"Writing: 12,345 pairs, [\d,]+ pairs/s\n", stream.getvalue())
    assert progress.format_count(1234567) == "1,234,567"


def test_count_line_is_redrawn_in_place_on_a_terminal_and_silent_when_disabled():
    terminal = _Terminal()
    with progress.Progress("Verifying", total=4, stream=terminal, interval=0) as counter:
        counter.update(3)
        counter.update()
    text = terminal.getvalue()
    assert text.count("\r\x1b[K") == 3 and text.endswith("\n") and text.count("\n") == 1
    assert "Verifying: 4 / 4 img (100.0%)" in text
    quiet = io.StringIO()
    with progress.Progress("fakes", total=4, stream=quiet, enabled=False, interval=0) as counter:
        counter.update(4)
    assert quiet.getvalue() == "" and counter.count == 4


def test_interrupted_terminal_line_is_ended():
    terminal = _Terminal()
    with pytest.raises(KeyboardInterrupt):
        with progress.Progress("Writing", total=9, stream=terminal, interval=0) as counter:
            counter.update()
            raise KeyboardInterrupt
    assert terminal.getvalue().endswith("\n") and "Writing: 1 / 9" in terminal.getvalue()
