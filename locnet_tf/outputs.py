"""Where the commands write: checked before the work starts, and written whole or not at all.

    check_writable(path, kind="folder" | "file", flag="--out")
    check_free_space(path, needed_bytes, what)
    atomic_write(path, text_or_bytes)
    with atomic_path(path) as tmp: ...      # write tmp; it replaces `path` when the block ends
    stale_partials(folder)                  # what killed writers left: {name: [partial files]}

A command checks its output paths first (`check_writable`), so a folder that
is read-only, a file where a folder should be (or the reverse) is one line
naming it before any data is read or any model loaded. What is written goes
to a temporary file in the same folder, renamed over the target when
complete (`os.replace` is atomic within a file system): a full disk or a
killed process leaves the previous file, never half of a new one. Both use
only the standard library: `tempfile` and `os.replace` are the tools.
"""

import contextlib
import errno
import os
import pathlib
import shutil
import tempfile

try:
    import fcntl  # POSIX: a lock on a partial file says its writer is alive (see stale_partials)
except ImportError:  # Windows
    fcntl = None


def check_writable(path, kind="folder", flag="--out"):
    """Raises unless `path` can be written as a `kind` ("folder" or "file"); creates nothing.

    A folder may exist already (it is written into) or not (it will be
    created); a file may exist (it is replaced) but must not be a folder. The
    nearest existing folder above must take new files: that is tried with a
    temporary file, which is removed at once.

    Raises:
        ValueError: `path` is a file where a folder is wanted, or a folder
            where a file is wanted.
        OSError: the place cannot be written (read-only, no permission, a
            file in the way above it), naming `path`.
    """
    path = pathlib.Path(path)
    if kind == "folder" and path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file; give a folder (it is created if missing).")
    if kind == "file" and path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file name (e.g. {path / 'report.json'}).")
    existing = path if kind == "folder" and path.is_dir() else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"cannot create it: {existing} is a file", str(path))
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise type(error)(error.errno, f"cannot write there ({error.strerror})", str(path)) from None


def check_free_space(path, needed, what):
    """Raises OSError (ENOSPC) naming `path` when its file system has less than `needed` bytes free.

    Checked before long work that ends in writing: a disk that fills up
    under Keras's checkpoint writer (h5py) does not raise, it crashes the
    process.
    """
    path = pathlib.Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < needed:
        raise OSError(
            errno.ENOSPC,
            f"not enough free space for {what}: {free / 1e6:.1f} MB free, about {needed / 1e6:.0f} MB needed",
            str(path),
        )


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path` (same suffix); it replaces `path` if the block succeeds.

    On any failure (a full disk, an exception, Ctrl-C) the temporary file is
    removed and `path` is left as it was.
    """
    path = pathlib.Path(path)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.stem}.partial-", suffix=path.suffix, dir=path.parent)
    if fcntl is not None:
        # Locked while it is written: `stale_partials` tells a killed writer's file from a live one by it.
        fcntl.flock(handle, fcntl.LOCK_EX)
    try:
        yield pathlib.Path(tmp)
        # mkstemp makes the file private (0600); the result should read like any file.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(handle)


def stale_partials(folder):
    """The partial files a killed writer left in `folder`: `{final file name: [partial paths]}`.

    `atomic_path` names its temporary file `.NAME.partial-XXXX.SUFFIX` and
    locks it (`fcntl.flock`) while it writes; a process killed with SIGKILL
    leaves the file, and the lock goes with the process. So a partial file
    whose lock is free belongs to nobody: the next writer of NAME.SUFFIX
    removes it (`predict` does, for each picture and video it writes). The
    folder is listed once; where `fcntl` is missing (Windows) nothing is
    reported.
    """
    found = {}
    if fcntl is None:
        return found
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return found
    for entry in entries:
        name = entry.name
        if not name.startswith(".") or ".partial-" not in name or not entry.is_file(follow_symlinks=False):
            continue
        suffix = pathlib.PurePath(name).suffix
        target = name[1:].split(".partial-", 1)[0] + suffix
        if _lock_is_free(entry.path):
            found.setdefault(target, []).append(pathlib.Path(entry.path))
    return found


def _lock_is_free(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def atomic_write(path, data):
    """Writes `data` (str or bytes) to `path` whole or not at all (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)


def _read_umask():
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


# Read once, at import: setting the umask is process-wide, and files other
# threads (TensorBoard, tf.data) create in between would get its 0.
_UMASK = _read_umask()
