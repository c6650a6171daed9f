"""A kept extract whose contents Delix no longer has: lost like the extract, not an error forever.

Re-attachment reads a processed queued extract's pages through the contents endpoint. A 404
there (the results removed since, while the extract still answers) escaped the collector: the
attempt failed, the record stayed, and every later attempt failed the same way. Its pages now
go again, with answer_lost rows holding the first charge, as when the extract itself is gone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fakes import FakeClock, FakeDelix
from test_adopt import adopt, dead_writer, out, paid, records_left

from airflow_provider_delix.api.errors import DelixNotFoundError
from airflow_provider_delix.api.models import ExtractFilePage
from airflow_provider_delix.core.table import read_table

pytestmark = pytest.mark.timeout(60)
__all__ = ["out"]  # the fixture, shared with test_adopt.py


class ContentsGone(FakeDelix):
    """Extracts answer as usual; the contents of ``gone`` answer 404."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gone: set[str] = set()

    def iter_extract_pages(self, extract_uuid: str, file_uuid: str) -> Iterator[ExtractFilePage]:
        if extract_uuid in self.gone:
            self._enter("iter_extract_pages")
            raise DelixNotFoundError("404", status_code=404)
        return super().iter_extract_pages(extract_uuid, file_uuid)


def test_contents_delix_no_longer_has_send_the_pages_again_instead_of_failing_every_attempt(
    out: str,
) -> None:
    clock = FakeClock()
    fake = ContentsGone(queue_polls=0, clock=clock)
    lost, kept = paid(fake, "lost", 7), paid(fake, "kept", 6)  # over 5 pages: queued, read by contents
    fake.gone.add(lost.extract_uuid or "")
    fake.extracts[lost.extract_uuid or ""].cost = 7 * 150  # not the example price: its own, known
    fake.extracts[lost.extract_uuid or ""].refund = 2 * 150  # and what it says it gave back
    dead_writer(out, lost, kept)
    adoption, stats = adopt(fake, out, clock=clock)
    assert (adoption.adopted, adoption.lost) == (1, 1)
    frame = read_table(out).set_index("source")
    assert set(frame.loc["kept.pdf", "status"]) == {"processed"}
    lost_rows = frame.loc["lost.pdf"]
    assert list(lost_rows["error"]) == ["answer_lost"] * 7
    assert lost_rows.credits_charged.sum() == 7 * 150, "the extract answered: its own cost, not a guess"
    assert lost_rows.credits_refunded.sum() == 2 * 150, "and its stated refund"
    assert "contents of extract" in lost_rows["error_message"].iloc[0]
    # charged for certain (the extract answered): nothing of it is at risk
    assert (stats.requests_in_doubt, stats.pages_in_doubt, stats.credits_at_risk) == (0, 0, 0)
    assert records_left(out) == [] and fake.ours_left() == set(), "its record and files are gone"
    again, _ = adopt(fake, out, clock=clock, tag="third")
    assert (again.adopted, again.lost) == (0, 0), "nothing left to fail on"
