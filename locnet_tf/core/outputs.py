"""Where the commands write: checked before the work starts, never over a user's files, whole or not at all.

    claim_folder(path, command, inputs)     # refuses a folder that is not `command`'s own, or holds an input
    claim_file(path, command, inputs)       # the same for a single file (a report, a grid picture)
    mark_folder(path, command)              # writes the marker that says `command` owns the folder
    check_writable(path, kind="folder" | "file", flag="--out")
    check_free_space(path, needed_bytes, what)
    atomic_write(path, text_or_bytes)
    with atomic_path(path) as tmp: ...      # write tmp; it replaces `path` when the block ends
    stale_partials(folder)                  # what killed writers left: {name: [partial files]}

One rule for every command that writes (`train --out`, `export --out`,
`predict --out`, `evaluate --out`, the data check's `--grid` and `--json`):

1. An output folder is new, empty, or recognisably one the same command
   wrote before; only then is it written into (or, for export, replaced whole,
   atomically: `export.run.WorkFolder`). A command marks its folder with the file
   `.locnet_tf.json` (`MARKER`): `{"command": "train", "locnet_tf": VERSION}`.
   Folders written before the marker existed are recognised by their own
   files: a run folder by a `config.json` that is a training config, an
   export by a `metadata.json` that lists artifacts, an evaluation's `eval/`
   by its picture names (`FOLDERS` says what each command writes). A folder
   export replaces must hold nothing else: what export did not write would
   be deleted with it. Anything else (another command's folder, a folder of
   other files) is one error naming what is there and how to choose another.
   predict has no older form to recognise (annotated pictures look like
   anyone's pictures): its unmarked, non-empty folders are refused.
2. An output file replaces only a file the same command wrote: an
   evaluation report (JSON with the report's keys), a data check report, a
   sample grid (a PNG whose `locnet_tf` text chunk says so; `plots`
   writes it). A model, a photo, an annotation file, anything else: refused.
3. No output may be an input of the same command (the model, the data file or
   folder, a source photo or video), contain one (a folder holding a source
   file), or lie inside an input folder (what is written there is read back
   as data next time). Paths are compared after resolving symlinks. The one
   exception is `train --init RUN --out RUN`: training loads the start model
   before it clears the folder (fine-tuning in place).

What is written goes to a temporary file in the same folder, renamed over the
target when complete (`os.replace` is atomic within a file system): a full
disk or a killed process leaves the previous file, never half of a new one.
Standard library only: `tempfile`, `os.replace` and `os.path.realpath` are
the tools.
"""

import contextlib
import dataclasses
import errno
import fnmatch
import json
import os
import pathlib
import shutil
import struct
import tempfile
import zlib

from locnet_tf.core import specs

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
        if lock_is_free(entry.path, missing=False):
            found.setdefault(target, []).append(pathlib.Path(entry.path))
    return found


def lock_is_free(path, missing=True):
    """Whether no process holds an `flock` on `path` (its writer is gone); `missing` for a file not there.

    A file that cannot be opened or locked for another reason counts as held:
    what cannot be judged is left alone.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return missing
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


# ----------------------------------------------------------------------------
# Whose folder, whose file: the rule every writing command follows (see the module docstring).

MARKER = ".locnet_tf.json"
# The PNG text chunk (keyword, value) a sample grid carries (`figures.draw_examples_grid`).
GRID_TAG = ("locnet_tf", "examples grid")
# What a folder may hold and still count as empty: `atomic_path`'s temporary files, the scratch
# folders of multi-worker training, and the desktop's own files (a folder made in Finder holds .DS_Store).
# `.train.lock`: a training holds it (runs.locked) or was killed holding it; never user content.
_TRANSIENT = (".*.partial-*", ".worker_*", ".train.lock", ".DS_Store", "Thumbs.db", "desktop.ini")


def _json_object(path):
    """The JSON object in `path`, or None (missing, unreadable, not JSON, not an object)."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _has_keys(path, *keys):
    value = _json_object(path)
    return value is not None and all(key in value for key in keys)


@dataclasses.dataclass(frozen=True)
class FolderKind:
    """What one command writes into its output folder.

    what: how the folder is named in messages ("a training run folder").
    names: `fnmatch` patterns of every entry the command writes there.
    whole: the command replaces the folder whole (export): entries outside
        `names` would be deleted with it, so they are refused even when the
        folder is marked.
    legacy: recognises the folder as written by a version before the marker
        (a function of the folder's path), or None.
    """

    what: str
    names: tuple
    whole: bool = False
    legacy: object = None


FOLDERS = {
    "train": FolderKind(
        "a training run folder",
        ("config.json", "model.keras", "history.csv", "curves.png", "logs", "report.json", "eval", "backup")
        + (".worker_*", ".*lock*"),
        # config.json says it: a train Config (a run that failed early left only that).
        legacy=lambda folder: _has_keys(folder / "config.json", "data", "image_size", "backbone", "epochs"),
    ),
    "export": FolderKind(
        "an export folder",
        ("saved_model", "model_*.tflite", "metadata.json", "parity.json", "labels.txt", "README.md", ".tflite_source"),
        whole=True,
        legacy=lambda folder: _has_keys(folder / "metadata.json", "artifacts", "source_sha256"),
    ),
    "predict": FolderKind("a folder of annotated predictions", ("*.png", "*.mp4")),
    "evaluate": FolderKind(
        "an evaluation's picture folder",
        ("confusion_matrix.png", "iou_histogram.png", "presence_pr_curve.png", "gallery_best.png", "gallery_worst.png"),
        # Only those pictures: any other file makes it someone else's folder.
        legacy=lambda folder: folder.is_dir() and _only(folder, FOLDERS["evaluate"].names),
    ),
}


def _only(folder, patterns):
    """Whether `folder` holds something, and only entries matching `patterns`."""
    entries = _entries(folder)
    return bool(entries) and all(_matches(e.name, patterns) for e in entries)


def _matches(name, patterns):
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _entries(folder):
    """The folder's entries, sorted, without `MARKER` and temporary files."""
    return sorted(
        (e for e in pathlib.Path(folder).iterdir() if e.name != MARKER and not _matches(e.name, _TRANSIENT)),
        key=lambda e: e.name,
    )


def _shown(entries, count=5):
    names = [e.name + ("/" if e.is_dir() else "") for e in entries]
    return ", ".join(names[:count]) + (f" (and {len(names) - count} more)" if len(names) > count else "")


def folder_owner(path):
    """The command that wrote the folder `path` (its marker, else its own files), or None."""
    path = pathlib.Path(path)
    marker = _json_object(path / MARKER)
    if marker is not None and marker.get("command") in FOLDERS:
        return marker["command"]
    for command, kind in FOLDERS.items():
        if kind.legacy is not None and kind.legacy(path):
            return command
    return None


def mark_folder(path, command):
    """Writes `MARKER` into the folder `path`: `command` wrote it (and may write it again)."""
    from locnet_tf import __version__

    atomic_write(pathlib.Path(path) / MARKER, json.dumps({"command": command, "locnet_tf": __version__}) + "\n")


def claim_folder(path, command, inputs=(), flag="--out", hint=None):
    """Raises unless `command` may write the folder `path` (rule 1 and 3 of the module docstring); writes nothing.

    Args:
        path: the output folder.
        command: a key of `FOLDERS`.
        inputs: (path, description) pairs of what the command reads, e.g.
            `("photos", "a source folder")`; see `check_not_input`.
        flag: the option that named `path`, for the message.
        hint: how to choose another folder, for the message; default: give
            a new or empty folder with `flag`.

    Raises:
        ValueError: `path` is another command's folder, holds files `command`
            did not write, or is, holds or lies inside an input.
        OSError: `path` cannot be written (`check_writable`).
    """
    check_writable(path, "folder", flag)
    path = pathlib.Path(path)
    entries = _entries(path) if path.is_dir() else []
    kind = FOLDERS[command]
    owner = folder_owner(path) if entries else None  # an empty folder is anyone's
    hint = hint or f"give a new or empty folder with {flag} (it is created if missing)"
    if owner is not None and owner != command:  # said first: it is what the folder is
        raise ValueError(f"{flag} {path} is {FOLDERS[owner].what} (written by {owner}), not {kind.what}; {hint}.")
    check_not_input(path, inputs, flag)
    if not entries:
        return
    if owner is None:
        raise ValueError(f"{flag} {path} holds files {command} did not write: {_shown(entries)}; {hint}.")
    foreign = [e for e in entries if not _matches(e.name, kind.names)]
    if kind.whole and foreign:
        raise ValueError(
            f"{flag} {path} holds files {command} did not write, which replacing the folder would delete: "
            f"{_shown(foreign)}; move them out or {hint}."
        )


# What each file output may replace: a file the same command wrote.
FILES = {
    "evaluate": ("an evaluation report", lambda path: _has_keys(path, "pc_accuracy", "counts", "threshold")),
    "data --json": ("a data check report", lambda path: _has_keys(path, "spec", "splits", "total", "class_names")),
    "data --grid": ("a sample grid", lambda path: png_text(path).get(GRID_TAG[0]) == GRID_TAG[1]),
}


def claim_file(path, command, inputs=(), flag="--out"):
    """Raises unless `command` may write the file `path`: new, or one it wrote (`FILES`); writes nothing.

    Raises:
        ValueError: `path` exists and is not `command`'s, or is or lies inside
            an input (`check_not_input`).
        OSError: `path` cannot be written (`check_writable`).
    """
    check_writable(path, "file", flag)
    check_not_input(path, inputs, flag)
    what, recognise = FILES[command]
    path = pathlib.Path(path)
    if path.exists() and not recognise(path):
        raise ValueError(
            f"{flag} {path} exists and is not {what} that {command.split()[0]} wrote, so it is left alone; "
            f"give a new file name with {flag}."
        )


def _real(path):
    return os.path.realpath(os.fspath(path))


def _within(inner, outer):
    """Whether the resolved path `inner` is `outer` or lies inside it."""
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def check_not_input(path, inputs, flag="--out"):
    """Raises ValueError when the output `path` is, holds or lies inside one of `inputs`.

    `inputs`: (path, description) pairs; a description reads "the model",
    "a source photo", "the data folder"... A third item True lets the output
    lie inside that input folder (a data folder whose reader takes only its
    own sub-folders and files, see `data_inputs`). Input paths that do not exist are
    left out (a camera, a stream, a built-in data set). Symlinks are resolved
    on both sides, so a link to the data is the data.
    """
    out = _real(path)
    for source, what, *nested_ok in inputs:
        if source is None or not os.path.exists(source):
            continue
        real = _real(source)
        if out == real:
            raise ValueError(f"{flag} {path} is {what} this command reads ({source}); give another {flag}.")
        if _within(real, out):
            raise ValueError(
                f"{flag} {path} holds {source}, {what} this command reads, which writing there could overwrite; "
                f"give a {flag} that holds none of the inputs."
            )
        if os.path.isdir(source) and _within(out, real) and not (nested_ok and nested_ok[0]):
            raise ValueError(
                f"{flag} {path} lies inside {source}, {what} this command reads (what is written there would be "
                f"read as input next time); give a {flag} outside it."
            )


def data_inputs(spec, data_dir=None):
    """The (path, description) inputs of a data SPEC: `csv:PATH`, `voc:DIR`, `coco:FILE`, `yolo:PATH`, and `data_dir`.

    The images a CSV or COCO file lists may lie anywhere; they are files no
    output may replace, which rule 2 (only a command's own files are
    replaced) and the folder rule (only a command's own folders) ensure.
    An output may lie inside a data folder (`train --data yolo:. --out
    runs/mine`, the usual layout of a project): the readers take only their
    own files there (data.yaml, images/ and labels/, Annotations/, *.csv),
    never a run's or a report's, and rule 2 keeps those from being replaced.
    """
    inputs = []
    kind, sep, rest = str(spec or "").partition(":")
    if sep and kind in specs.FILE_KINDS and rest:
        inputs.append((rest, "the data folder" if os.path.isdir(rest) else "the data file", True))
    if data_dir:
        inputs.append((data_dir, "the TFDS data folder", True))
    return inputs


def png_text(path):
    """A PNG file's text chunks (tEXt, zTXt, iTXt) as a dict; {} for anything that is not a PNG."""
    texts = {}
    try:
        with open(path, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                return {}
            while True:
                head = f.read(8)
                if len(head) < 8:
                    break
                length, kind = struct.unpack(">I4s", head)
                if kind in (b"IDAT", b"IEND") or length > 1 << 20:
                    break  # text chunks come before the image data (matplotlib and Pillow write them there)
                data = f.read(length)
                f.seek(4, os.SEEK_CUR)  # the CRC
                key, _, value = data.partition(b"\0")
                if kind == b"tEXt":
                    texts[key.decode("latin-1")] = value.decode("latin-1")
                elif kind == b"zTXt":
                    texts[key.decode("latin-1")] = zlib.decompress(value[1:]).decode("latin-1")
                elif kind == b"iTXt":
                    compressed, rest = value[:1], value[2:]
                    text = rest.split(b"\0", 2)[-1]
                    texts[key.decode("latin-1")] = (zlib.decompress(text) if compressed == b"\1" else text).decode(
                        "utf-8"
                    )
    except (OSError, zlib.error, UnicodeDecodeError, struct.error):
        return texts
    return texts
