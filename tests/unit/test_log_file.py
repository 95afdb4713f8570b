"""The app's file writer: whole lines, and a new file after rotation by rename."""
from __future__ import annotations

import logging
import os

from pcbuilder import log_file
from pcbuilder.log_file import AppendFileHandler


def _record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("t", logging.INFO, "", 0, msg, (), None)


def test_lines_are_appended_whole(tmp_path):
    handler = AppendFileHandler(str(tmp_path / "sub" / "app.log"))
    for i in range(3):
        handler.emit(_record(f"line {i}"))
    handler.close()
    assert (tmp_path / "sub" / "app.log").read_text() == "line 0\nline 1\nline 2\n"


def test_no_file_until_the_first_line(tmp_path):
    AppendFileHandler(str(tmp_path / "never.log")).close()
    assert not (tmp_path / "never.log").exists()


def test_rename_rotation_is_followed_and_no_line_is_lost(tmp_path, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(log_file.time, "monotonic", lambda: now[0])
    path = tmp_path / "app.log"
    handler = AppendFileHandler(str(path))
    handler.emit(_record("before"))
    os.rename(path, tmp_path / "app.log.1")  # what a rotator does
    handler.emit(_record("within the check interval"))  # still the old fd: kept in .1
    now[0] += log_file.REOPEN_CHECK_S
    handler.emit(_record("after"))
    handler.close()
    assert (tmp_path / "app.log.1").read_text() == "before\nwithin the check interval\n"
    assert path.read_text() == "after\n"


def test_a_removed_file_is_recreated(tmp_path, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(log_file.time, "monotonic", lambda: now[0])
    path = tmp_path / "app.log"
    handler = AppendFileHandler(str(path))
    handler.emit(_record("one"))
    path.unlink()
    now[0] += 5
    handler.emit(_record("two"))
    handler.close()
    assert path.read_text() == "two\n"
