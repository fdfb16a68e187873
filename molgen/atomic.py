"""The one way molgen writes a file: under a temporary name in the same folder, renamed when complete.

A reader never sees a half-written file: SDF outputs, batch chunks and manifests, failure lists,
checkpoints, datasets and reports all go through :class:`AtomicFile`, :func:`open_atomic` (a text or
binary handle, optionally gzip-compressed) or :func:`atomic_path` (a temporary path for libraries that
write files themselves, such as ``torch.save`` or ``numpy.savez``). The rename is atomic on POSIX file
systems; the data is flushed and fsynced first.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from molgen.errors import InputError

__all__ = ["AtomicFile", "atomic_path", "check_output_path", "open_atomic"]


def _umask() -> int:
    """The process umask (read without changing it where the OS allows)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # not thread-safe, hence only a fallback
    os.umask(mask)
    return mask


def check_output_path(path: Path) -> None:
    """Raise :class:`InputError` when ``path`` cannot be a file we write (a folder, no parent folder)."""
    if path.is_dir():
        raise InputError(f"cannot write {path}: it is a directory")
    parent = path.parent
    if not parent.exists():
        raise InputError(f"cannot write {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise InputError(f"cannot write {path}: {parent} is not a directory")


def _temp_name(path: Path) -> tuple[int, Path]:
    check_output_path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.chmod(fd, 0o666 & ~_umask())
    return fd, Path(tmp)


def _discard(fh: IO[Any] | None, raw: IO[Any] | None, tmp_path: Path) -> None:
    try:
        for handle in (fh, raw):
            if handle is not None and not handle.closed:
                handle.close()
    finally:
        try:
            tmp_path.unlink()
        except FileNotFoundError:
            pass


class AtomicFile:
    """A file written under a temporary name and renamed onto ``path`` by :meth:`commit`.

    Args:
        path: final path.
        binary: open in binary mode (``fh`` takes bytes) instead of UTF-8 text.
        compress: gzip the content (the final path should end in ``.gz``).

    Raises:
        InputError: the path cannot be written (a directory, a missing folder, no permission).
    """

    def __init__(self, path: str | Path, *, binary: bool = False, compress: bool = False) -> None:
        self.path = Path(path)
        fd, self.tmp_path = _temp_name(self.path)
        self._raw: IO[bytes] | None = None
        if compress:
            self._raw = os.fdopen(fd, "wb")
            gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0)
            self.fh: IO[Any] = gz if binary else _text(gz)
        else:
            self.fh = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        self._finalizer = weakref.finalize(self, _discard, self.fh, self._raw, self.tmp_path)
        self.closed = False

    def commit(self) -> None:
        """Flush, fsync, close and rename the temporary file onto the final path."""
        if self.closed:
            return
        self.closed = True
        self._finalizer.detach()
        try:
            self.fh.flush()
            self.fh.close()  # closes the gzip stream (writes its trailer), not the raw file
            target = self._raw if self._raw is not None else None
            if target is not None:
                target.flush()
                os.fsync(target.fileno())
                target.close()
            else:
                with open(self.tmp_path, "rb") as again:
                    os.fsync(again.fileno())
            os.replace(self.tmp_path, self.path)
        except BaseException:
            _discard(self.fh, self._raw, self.tmp_path)
            raise

    def abort(self) -> None:
        """Close and delete the temporary file; the final path is left untouched."""
        if self.closed:
            return
        self.closed = True
        self._finalizer.detach()
        _discard(self.fh, self._raw, self.tmp_path)


def _text(binary: IO[bytes]) -> IO[str]:
    import io

    return io.TextIOWrapper(binary, encoding="utf-8", newline="\n")


@contextmanager
def open_atomic(path: str | Path, *, binary: bool = False, compress: bool = False) -> Iterator[IO[Any]]:
    """Open ``path`` for writing atomically: a handle on a temporary file, renamed onto ``path`` on
    normal exit, deleted (``path`` untouched) on an exception.

    Raises:
        InputError: the path cannot be written, raised on entry.
    """
    f = AtomicFile(path, binary=binary, compress=compress)
    try:
        yield f.fh
    except BaseException:
        f.abort()
        raise
    f.commit()


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` for a library that writes the file itself; renamed onto
    ``path`` on normal exit, deleted on an exception.

    Args:
        path: final path.
        suffix: a suffix the writing library insists on (``numpy.savez`` appends ``.npz``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
