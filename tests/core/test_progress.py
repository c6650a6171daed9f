"""The progress line: the archive is counted in the background, the ETA is pages left / pages/s."""

from __future__ import annotations

import math
from pathlib import Path

from airflow_provider_delix.core.progress import ArchiveProgress
from airflow_provider_delix.core.run_stats import Progress, ProgressReporter, RunStats


def _counted(tmp_path: Path, files: int, lines: list[str]) -> ArchiveProgress:
    for i in range(files):
        (tmp_path / f"{i}.png").write_bytes(b"x")
    reporter = ArchiveProgress(str(tmp_path), emit=lines.append)
    reporter.start()
    reporter._counter.join(10)
    assert reporter.images_total == files
    return reporter


def _progress(done: int, rate: float, planned: int, inputs: int, total: int | None = None) -> Progress:
    eta = None if total is None else max(total - done, 0) / rate
    return Progress(done, total, rate, eta, 600, 200, pages_planned=planned, inputs_planned=inputs)


def test_eta_counts_pages_left_not_images_left_to_read(tmp_path: Path) -> None:
    """The issue's line: every image read, 5 pages done, 17 to go -> not 'ETA 0m00s'."""
    lines: list[str] = []
    reporter = _counted(tmp_path, 22, lines)
    assert len(list(reporter.track(iter(range(22))))) == 22 and reporter.images_read == 22
    reporter(_progress(done=5, rate=0.5, planned=20, inputs=20))  # 2 images read, not planned yet
    assert lines == [
        "images 22/22 read, pages 5 done, 0.5 pages/s, ETA 0m34s, credits 600 charged / 200 refunded"
    ]


def test_eta_before_planning_uses_the_archive_count_at_the_pages_per_input_seen(tmp_path: Path) -> None:
    lines: list[str] = []
    reporter = _counted(tmp_path, 10, lines)
    list(zip(range(4), reporter.track(iter(range(100))), strict=False))
    reporter(_progress(done=3, rate=1.0, planned=0, inputs=0))  # nothing planned: 1 page per input
    reporter(_progress(done=3, rate=1.0, planned=12, inputs=4))  # 3 pages per input: 30 in all
    assert [line.split("ETA ")[1].split(",")[0] for line in lines] == ["0m07s", "0m27s"]


def test_eta_once_the_pipeline_knows_the_page_total(tmp_path: Path) -> None:
    lines: list[str] = []
    reporter = _counted(tmp_path, 3, lines)
    reporter(_progress(done=90, rate=2.0, planned=150, inputs=3, total=150))
    assert "pages 90/150 done" in lines[0] and "ETA 0m30s" in lines[0]


def test_no_eta_while_counting_or_before_a_page_is_written(tmp_path: Path) -> None:
    counting = ArchiveProgress(str(tmp_path), emit=lambda _: None)  # its count not started
    line = counting.describe(_progress(done=2, rate=1.0, planned=4, inputs=4))
    assert "images 0/counting read" in line and "ETA unknown" in line
    counted = _counted(tmp_path, 5, [])
    assert "ETA unknown" in counted.describe(_progress(done=0, rate=0.0, planned=5, inputs=5))


def test_the_reporter_passes_pages_planned_so_far() -> None:
    stats = RunStats()
    seen: list[Progress] = []
    now = [0.0]
    reporter = ProgressReporter(seen.append, 0.0, lambda: now[0], stats)
    stats.add_planned(3, 1)
    stats.add_planned(2, 0)
    now[0] = 2.0
    reporter.maybe_report()
    assert (seen[0].pages_planned, seen[0].inputs_planned, seen[0].pages_total) == (5, 2, None)
    assert seen[0].pages_done == 1 and seen[0].eta_seconds is None
    stats.input_complete = True
    reporter.maybe_report()
    assert seen[1].pages_total == 5 and seen[1].eta_seconds == math.inf  # nothing written yet


def test_an_infinite_eta_is_unknown_not_an_error(tmp_path: Path) -> None:
    """A rate too small to divide by (a deferred run's first line after a long wait) gives an
    infinite ETA: the line says unknown instead of the callback failing."""
    counted = _counted(tmp_path, 5, [])
    line = counted.describe(Progress(0, 10, 1e-320, math.inf, 0, 0, pages_planned=10, inputs_planned=5))
    assert "ETA unknown" in line
    assert "ETA unknown" in counted.describe(_progress(done=0, rate=1e-320, planned=5, inputs=5))
