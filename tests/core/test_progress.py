"""The progress line counts the archive in the background and estimates an ETA from the start."""

from __future__ import annotations

from pathlib import Path

from airflow_provider_delix.core.progress import ArchiveProgress
from airflow_provider_delix.core.run_stats import Progress


def test_counts_the_archive_and_estimates_eta_before_the_pipeline_can(tmp_path: Path) -> None:
    for i in range(10):
        (tmp_path / f"{i}.png").write_bytes(b"x")
    now = [0.0]
    lines: list[str] = []
    reporter = ArchiveProgress(str(tmp_path), emit=lines.append, clock=lambda: now[0])
    reporter.start()
    reporter._counter.join(10)
    assert reporter.images_total == 10
    seen = list(zip(range(4), reporter.track(iter(range(100))), strict=False))
    assert len(seen) == 4 and reporter.images_read == 4
    now[0] = 8.0  # 4 images in 8 s -> 6 left take 12 s
    reporter(
        Progress(
            pages_done=3,
            pages_total=None,
            pages_per_second=0.4,
            eta_seconds=None,
            credits_charged=600,
            credits_refunded=200,
        )
    )
    assert lines == [
        "images 4/10 read, pages 3 done, 0.4 pages/s, ETA 0m12s, credits 600 charged / 200 refunded"
    ]


def test_an_uncountable_archive_only_loses_the_eta() -> None:
    reporter = ArchiveProgress("/nonexistent/**/*.png", emit=lambda _: None)
    reporter.start()
    reporter._counter.join(10)
    line = reporter.describe(Progress(0, None, 0.0, None, 0, 0))
    assert "ETA unknown" in line and "images 0/" in line
