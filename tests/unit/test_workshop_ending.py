"""A workshop's end: the students' notice (exact words, when it appears, the link) and the
instructor's report rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from naic.extensions.archive import zip_folder
from naic.hub.workshops.ending import NOTICE_BEFORE_END, end_notice, report_rows

END = datetime(2027, 1, 20, 16, 0, tzinfo=UTC)


def notice(guest: bool, now: datetime, title: str = "ML intro", name: str = "ml-intro"):
    return end_notice(
        title=title, name=name, ends_at=END, guest=guest, now=now,
        session_url="/user/kari/ml-intro/",
    )  # fmt: skip


def test_the_end_notice_comes_in_the_last_hour_with_the_date_and_the_download() -> None:
    assert notice(True, END - NOTICE_BEFORE_END - timedelta(seconds=1)) is None
    guest = notice(True, END - NOTICE_BEFORE_END)
    assert guest["text"] == (
        "ML intro ends at 16:00 UTC on 2027-01-20: your files (~/ml-intro) are deleted then. "
        "Download them."
    )
    assert guest["link"] == {
        "label": "Download my folder",
        "url": "/user/kari/ml-intro/naic/api/workshop/archive",
    }
    assert guest["id"] == "workshop-end" and guest["deadline"] == END.isoformat()
    assert notice(False, END - timedelta(minutes=5))["text"] == (
        "ML intro ends at 16:00 UTC on 2027-01-20. ~/ml-intro stays in your home; "
        "download a copy if you wish."
    )


def test_a_long_title_and_name_still_fit_jupyterlabs_140_characters() -> None:
    for guest in (True, False):
        got = notice(guest, END, title="A" * 80, name="n" * 40)["text"]
        assert len(got) <= 140, got
        assert got.startswith("A" * 29 + "… ends at 16:00 UTC on 2027-01-20")


def test_the_report_has_one_row_per_seat() -> None:
    joined = datetime(2027, 1, 20, 9, 5, tzinfo=UTC)
    seats = [SimpleNamespace(username=u, seat=i, joined_at=joined)
             for i, u in enumerate(["kari", "ola"], 1)]  # fmt: skip
    runs = {"kari": [SimpleNamespace(gpu_hours=1.25), SimpleNamespace(gpu_hours=0.5)], "ola": []}
    progress = {"kari": {"01.ipynb": [3, 5], "02.ipynb": [1, 4]}, "ola": {}}
    versions = {"kari": {"version": "abc1234"}, "ola": {}}
    rows = report_rows(seats, runs.__getitem__, progress.__getitem__, versions.__getitem__)
    assert rows == [
        ["kari", 1, "2027-01-20T09:05:00Z", 2, "1.750", 4, 9, "abc1234"],
        ["ola", 2, "2027-01-20T09:05:00Z", 0, "0.000", 0, 0, ""],
    ]


def test_the_download_leaves_out_git_and_checkpoints_and_links(tmp_path) -> None:
    import io
    import zipfile

    folder = tmp_path / "ml-intro"
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "HEAD").write_text("ref")
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / ".ipynb_checkpoints" / "a-checkpoint.ipynb").write_text("{}")
    (folder / "sub").mkdir()
    (folder / "a.ipynb").write_text("{}")
    (folder / "sub" / "b.txt").write_text("b")
    (folder / "secret").symlink_to("/etc/hostname")
    out = io.BytesIO()
    assert zip_folder(folder, out) == 2
    assert sorted(zipfile.ZipFile(out).namelist()) == ["ml-intro/a.ipynb", "ml-intro/sub/b.txt"]
