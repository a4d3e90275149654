"""An import's rows checked in a second process while this one writes the chunk before (``IMPORT_PROCESSES``).

A row costs the writing process ~13 µs in the database and ~16–18 in Python, a third of it checking addresses and
phone numbers: where a second core is free, a fork of the importing process (made once the header is read: it has
the reader, where the header left it, and the row checker) reads, checks, merges and packs each chunk, and sends it
back as ``marshal`` (a few times cheaper than pickle for these tuples), while this process writes the chunk before.
Both paths run :func:`check_chunks`, so the chunks, their rows and their errors are the same; the writing process
commits them one at a time, as when it checks them itself. A checking process that stops (killed, out of memory)
makes the import fail with :class:`CheckerStopped`: the chunks committed stay, no row is lost without a word.
"""

from __future__ import annotations

import logging
import marshal
import os
import pickle
import signal
import struct
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO

from ..consent import address_hash
from ..models.contacts import new_public_ids
from .import_rows import EMAIL, Packed, RowCleaner, cleaned_chunks, merge_rows, pack

__all__ = ["Checked", "CheckerStopped", "check_chunks", "checked_chunks", "processes_for"]

#: a chunk checked: rows read, rejected rows (line, column, reason), rows merged into an earlier one, the merged
#: rows packed, the digests of their emails for the suppression lists (None when no channel reads them), and (from
#: a checking process) a random public id for each merged row, for those that turn out new (else None)
Checked = tuple[int, list[tuple[int, str, str]], int, list[Packed], list[str] | None, list[str] | None]
log = logging.getLogger(__name__)
#: a frame on the pipe: its kind (a chunk, the end, an exception) and the length of what follows
_HEAD = struct.Struct("<BQ")
_CHUNK, _END, _ERROR = 1, 2, 3


class CheckerStopped(RuntimeError):
    """The process checking an import's rows stopped before the end of the file."""


def processes_for(setting: int) -> int:
    """The processes an import uses for *setting* (``IMPORT_PROCESSES``): 0 means two where this process may run
    on two cores or more, else one; one wherever processes cannot be forked."""
    if not hasattr(os, "fork"):
        return 1
    if setting == 0:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return 2 if cores >= 2 else 1
    return min(setting, 2)


def check_chunks(
    rows: Iterator[tuple[int, list[str]]],
    width: int,
    cleaner: RowCleaner,
    by_field: Mapping[str, str],
    size: int,
    extra_tags: list[str],
    secret: str | None,
    ahead: bool = False,
    first: int | None = None,
) -> Iterator[Checked]:
    """*rows* (line, cells) checked and merged, in chunks of *size* checked rows, the first *first* rows and growing
    (see :func:`cleaned_chunks`).

    :param extra_tags: tags added to every row's.
    :param secret: the instance's secret, to digest each chunk's emails with; None when no channel reads them.
    :param ahead: the chunks are made in a process of their own, which has time to spare: it also does what the
        writer would do for a new contact (its row's values, its public id).
    """
    for chunk in cleaned_chunks(rows, width, cleaner, by_field, size, first):
        merged, folded = merge_rows(chunk.rows)
        packed = [pack(line, row, extra_tags, ahead) for line, row in merged]
        hashes = None if secret is None else list({address_hash(secret, "", p[EMAIL]) for p in packed if p[EMAIL]})
        public_ids = new_public_ids(len(packed)) if ahead else None
        yield chunk.read, [(e.line, e.column, e.reason) for e in chunk.errors], folded, packed, hashes, public_ids


@contextmanager
def checked_chunks(checking: Callable[[bool], Iterator[Checked]], processes: int) -> Iterator[Iterator[Checked]]:
    """The chunks ``checking(ahead)`` makes (a :func:`check_chunks`), made in a forked process when *processes* is
    2 or more (the next chunk is checked while the caller writes this one); the process is stopped when the caller
    leaves, whether or not it read every chunk."""
    checker = None
    if processes >= 2:
        try:
            checker = _Checker(checking(True))
        except OSError as exc:  # no process to be had (memory, a process limit): this one checks, as with 1
            log.warning("an import checks its rows in its own process: no second one could be started (%s)", exc)
    if checker is None:
        yield checking(False)
        return
    try:
        yield checker.chunks()
    finally:
        checker.close()


class _Checker:
    """A forked process running a :func:`check_chunks` and sending the chunks back through a pipe."""

    def __init__(self, checked: Iterator[Checked]) -> None:
        read_end, write_end = os.pipe()
        try:
            with warnings.catch_warnings():
                # Python 3.12 warns of a fork while other threads run (a worker's, the WAL checkpoints'): the child
                # takes no lock of theirs (no database, no logging handler of ours); it checks rows, ends with _exit
                warnings.filterwarnings("ignore", r"This process .* is multi-threaded", DeprecationWarning)
                pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            raise
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            os.close(read_end)
            _serve(checked, write_end)
        os.close(write_end)
        self.pid = pid
        self.pipe: IO[bytes] = open(read_end, "rb")  # noqa: SIM115 - closed by close()
        self.done = False
        self.rows = 0

    def chunks(self) -> Iterator[Checked]:
        while True:
            kind, payload = self._frame()
            if kind == _END:
                self._reap()
                return
            if kind == _ERROR:
                self._reap()
                raise pickle.loads(payload)
            chunk: Checked = marshal.loads(payload)
            self.rows += chunk[0]
            yield chunk

    def _frame(self) -> tuple[int, bytes]:
        head = self.pipe.read(_HEAD.size)
        if len(head) == _HEAD.size:
            kind, size = _HEAD.unpack(head)
            payload = self.pipe.read(size)
            if len(payload) == size:
                return kind, payload
        raise CheckerStopped(
            f"the process checking the import's rows stopped ({self._reap()}) after {self.rows} rows: the rows "
            "before were imported, none after; import the file again (contacts already imported are updated, "
            "not duplicated), or set NUDGE_IMPORT_PROCESSES=1 to check them in the importing process"
        )

    def _reap(self) -> str:
        """Wait for the process to end; how it ended."""
        self.done = True
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:  # pragma: no cover - reaped by someone else (a SIGCHLD handler of the host)
            return "its exit status unknown"
        if os.WIFSIGNALED(status):
            return f"killed by signal {os.WTERMSIG(status)}"
        return f"exit status {os.waitstatus_to_exitcode(status)}"

    def close(self) -> None:
        if not self.done:  # the caller stopped early (an error, a cancel): the rest is not wanted
            os.kill(self.pid, signal.SIGKILL)  # not reaped yet, so still there (ended or not)
            self._reap()
        self.pipe.close()


def _serve(checked: Iterator[Checked], fd: int) -> None:  # pragma: no cover - runs in the child
    """The child's life: send every chunk, then the end or the exception that stopped it; never return (the
    parent's stack, pytest's or a worker's, must not go on in the child)."""
    status = 1
    try:
        # Ctrl-C reaches the whole process group: the parent stops the child; a worker's handlers are not ours
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with open(fd, "wb") as out:
            try:
                for chunk in checked:
                    _send(out, _CHUNK, marshal.dumps(chunk))
            except Exception as exc:
                _send(out, _ERROR, _pickled(exc))
            else:
                _send(out, _END, b"")
        status = 0
    finally:
        os._exit(status)


def _send(out: IO[bytes], kind: int, payload: bytes) -> None:  # pragma: no cover - runs in the child
    out.write(_HEAD.pack(kind, len(payload)))
    out.write(payload)
    out.flush()


def _pickled(exc: Exception) -> bytes:  # pragma: no cover - runs in the child
    """*exc* to raise in the parent, its traceback in the child as a note (or a RuntimeError saying what it was,
    when it cannot travel)."""
    exc.add_note(
        "raised in the process checking the import's rows:\n" + "".join(traceback.format_tb(exc.__traceback__))
    )
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
    except Exception:
        return pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
    return data
