"""The app's local log file: one ``write(2)`` per line on an ``O_APPEND`` fd.

Several uWSGI workers share one file per instance; one append-mode write per line keeps
their lines whole, where a buffered text stream may split a long line (a traceback) into
several writes that interleave with other processes.

Rotation is by rename (the rotator moves the file away, the writer starts a new one at
the same path). The handler notices within ``REOPEN_CHECK_S``: it compares the path's
inode with its open fd's and reopens, so no line is written to a file nobody reads any
more beyond that second, and none is lost (the old file keeps what was written to it).
"""
from __future__ import annotations

import logging
import os
import time

#: How often (seconds) the writer checks whether its file was renamed or removed.
REOPEN_CHECK_S = 1.0
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


class AppendFileHandler(logging.Handler):
    """Writes each formatted record with a single ``write(2)``.

    The file is opened at the first line; :meth:`create` makes it exist before that.
    """

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._next_check = 0.0

    def create(self) -> None:
        """Make the file exist now (empty), so that a tailer has found it before the first
        line: Alloy looks for new files once a second and would hold that line until then."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        os.close(os.open(self.path, _FLAGS, 0o644))

    def _open(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        fd = os.open(self.path, _FLAGS, 0o644)
        st = os.fstat(fd)
        self.fd, self._identity = fd, (st.st_dev, st.st_ino)

    def _reopen_if_rotated(self, now: float) -> None:
        self._next_check = now + REOPEN_CHECK_S
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._identity:
                return
        except FileNotFoundError:
            pass
        old, self.fd = self.fd, None
        self._open()
        if old is not None:
            os.close(old)

    def write_line(self, data: bytes) -> None:
        """Append one complete line (``data`` ends with a newline)."""
        now = time.monotonic()
        if self.fd is None:
            self._open()
            self._next_check = now + REOPEN_CHECK_S
        elif now >= self._next_check:
            self._reopen_if_rotated(now)
        while data:
            data = data[os.write(self.fd, data):]

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write_line((self.format(record) + "\n").encode("utf-8", "backslashreplace"))
        except Exception:  # logging must never fail the caller
            self.handleError(record)

    def close(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None
        super().close()
