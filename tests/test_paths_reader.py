import os
from pathlib import Path

from abuso.readers.paths import PathsReader

MSG = b"From: a@example.org\nSubject: %d\nMessage-ID: <%d@x>\n\nbody %d\n"


def msg(n: int) -> bytes:
    return MSG % (n, n, n)


def test_folder_tree_file_order_and_non_messages(tmp_path: Path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.eml").write_bytes(msg(1))
    (tmp_path / "b" / "c.eml").write_bytes(msg(2))
    (tmp_path / "notes.json").write_bytes(b'{"x": 1}')
    r = PathsReader({"paths": [str(tmp_path)]})
    items = list(r)
    # Not mail, but not dropped either: the pipeline judges it and the runner quarantines it with the reason.
    assert [i.data for i in items] == [msg(1), msg(2), b'{"x": 1}']
    assert r.errors == []


def test_mbox_is_detected_by_content_and_unescaped(tmp_path: Path):
    box = tmp_path / "archive.txt"  # the name says nothing
    box.write_bytes(b"From a@example.org Sat Nov 22 03:14:07 2026\n" + msg(1) + b">From the log\n\n"
                    b"From b@example.org Sat Nov 22 03:15:07 2026\n" + msg(2))
    items = list(PathsReader({"paths": [str(box)]}))
    assert len(items) == 2
    assert items[0].data.endswith(b"From the log\n")
    assert items[1].origin == f"{box}#2"


def test_maildir_mark_moves_to_cur_with_seen_flag_only_when_done(tmp_path: Path):
    md = tmp_path / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (md / sub).mkdir(parents=True)
    (md / "new" / "1.host").write_bytes(msg(1))
    (md / "cur" / "2.host:2,S").write_bytes(msg(2))
    (md / "cur" / "3.host:2,").write_bytes(msg(3))
    r = PathsReader({"paths": [str(md)], "mark": True})
    items = list(r)
    assert [i.data for i in items] == [msg(1), msg(3)]  # seen mail is skipped
    assert os.listdir(md / "new") == ["1.host"]  # nothing marked before done()
    r.done(items[0], None)
    assert os.listdir(md / "new") == []
    assert sorted(os.listdir(md / "cur")) == ["1.host:2,S", "2.host:2,S", "3.host:2,"]


def test_files_from(tmp_path: Path):
    (tmp_path / "x").write_bytes(msg(7))
    lst = tmp_path / "list"
    lst.write_text(f"{tmp_path / 'x'}\n\n{tmp_path / 'missing'}\n")
    r = PathsReader({"files_from": str(lst)})
    assert [i.data for i in r] == [msg(7)]
    assert "cannot read" in r.errors[0]


def test_mbox_mark_records_finished_messages_and_skips_them_next_time(tmp_path: Path):
    box = tmp_path / "inbox"
    box.write_bytes(b"From a@example.org Sat Nov 22 03:14:07 2026\n" + msg(1) + b"\n"
                    b"From b@example.org Sat Nov 22 03:15:07 2026\n" + msg(2))
    r = PathsReader({"paths": [str(box)], "mark": True})
    items = list(r)
    r.done(items[0], None)  # the second was never finished (killed, transient failure)
    again = list(PathsReader({"paths": [str(box)], "mark": True}))
    assert [i.data for i in again] == [msg(2)]
    assert box.read_bytes().count(b"From ") == 2  # the mbox itself is untouched
