"""What the command-line entry points share: a user's mistake as one line, not a traceback.

`python -m locnet_tf.train|evaluate|export|predict|data|demo` run their `main`
through `run`, which prints `error: ...` (naming the file, and the line or
object, and the problem) and exits with status 1 for:

- bad data (`DataError`) and a bad setting (`ValueError`);
- the file system refusing a read or a write (`OSError`: a missing file, a
  read-only folder, a full disk, a file where a folder should be);
- TensorFlow's data pipeline stopping on a file (its checks name the file;
  `locnet_tf.data.decode.read_image`).

Ctrl-C (`KeyboardInterrupt`) ends any command with the one line
`interrupted` and exit status 130 (128 + SIGINT, what shells report for a
process stopped by Ctrl-C), no traceback: every file a command writes goes
to a temporary name first (`locnet_tf.core.outputs.atomic_path`, the export's work
folder), removed when the command stops, so nothing half-written is left.

`ArgumentParser` is `argparse.ArgumentParser` that also refuses a float flag
given as nan or inf (`--threshold nan`), with one `error:` line naming the
flag: every command's parser is one, so no float flag escapes the check.

`LOCNET_TF_TRACEBACK=1` shows the traceback instead. Calling `main(argv)`
from Python still raises, so notebooks and tests see the exception. Anything
else is a bug and keeps its traceback.
"""

import argparse
import contextlib
import importlib.util
import io
import math
import os
import re
import signal
import sys
import threading

from locnet_tf.core.errors import DataError

TRACEBACK_ENV = "LOCNET_TF_TRACEBACK"
INTERRUPTED = 130  # the exit status of a command stopped by Ctrl-C: 128 + SIGINT, as shells report it
USER_ERRORS = (DataError, ValueError, OSError)
# What `decode.read_image`'s checks say: "assertion failed: [PROBLEM:] [PATH]".
_ASSERTION = re.compile(r"assertion failed: \[(?P<problem>.+?):?\] \[(?P<path>.+?)\]")
# TensorFlow ops that read data files: their errors are about a file, not a bug.
_DATA_OPS = ("ReadFile", "Decode", "assertion failed", "IteratorGetNext", "MultiDeviceIteratorGetNextFromShard")


def run(main, argv=None, skip_bad_hint=False):
    """Runs `main(argv)` and returns its exit status; user errors become `error: ...` on stderr.

    `skip_bad_hint`: the command reads data sources and has `--skip-bad`, so
    a `DataError` also says what that flag does.
    """
    with _noting_interrupts() as interrupted:
        try:
            return main(argv)
        except BaseException as error:
            if _show_traceback():
                raise
            if isinstance(error, KeyboardInterrupt) or interrupted:
                # Ctrl-C. (Raised while TensorFlow's C++ calls back into Python, the KeyboardInterrupt can
                # come out as another exception, a TypeError from tf.nest say: the signal handler noted it.)
                # What the command's libraries printed on the way out is dropped (see `_HeldStderr`).
                interrupted.drop_held()
                print("interrupted", file=sys.stderr)
                return INTERRUPTED
            message = user_message(error) if isinstance(error, Exception) else None
            if message is None:  # a bug (or SystemExit): as it is
                raise
            if skip_bad_hint and isinstance(error, DataError):
                message += (
                    "\n(--skip-bad leaves bad entries out and lists them; python -m locnet_tf.data SPEC checks a "
                    "source)"
                )
            print(f"error: {message}", file=sys.stderr)
            print(f"({TRACEBACK_ENV}=1 shows the traceback)", file=sys.stderr)
            return 1


def _show_traceback():
    return os.environ.get(TRACEBACK_ENV, "") not in ("", "0")


# One entry per Ctrl-C while a command runs (see `_noting_interrupts`).
_INTERRUPTS = []


def interrupt_count():
    """How many times Ctrl-C has come while commands of this process ran; long loops compare it (see `run`)."""
    return len(_INTERRUPTS)


@contextlib.contextmanager
def _noting_interrupts():
    """Yields a `_Since`, true once Ctrl-C (SIGINT) has come; Ctrl-C still raises KeyboardInterrupt.

    The handler is put in only where Python's own is (the main thread; not
    where SIGINT is ignored, as in a background job), and put back
    afterwards; a command run inside another (the check inside train) shares
    the outer one's. From the Ctrl-C on, Python's stderr is held back
    (`_HeldStderr`); it is written out when the command ends normally.
    """
    before = len(_INTERRUPTS)
    main_thread = threading.current_thread() is threading.main_thread()
    if not main_thread or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield _Since(before, None)
        return
    held = _HeldStderr()

    def handler(signum, frame):
        _INTERRUPTS.append(signum)
        if not _show_traceback():
            held.start()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield _Since(before, held)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        held.release()


class _Since:
    """True when Ctrl-C came after it was made; `drop_held` drops what was printed since."""

    def __init__(self, start, held):
        self.start = start
        self.held = held

    def __bool__(self):
        return len(_INTERRUPTS) > self.start

    def drop_held(self):
        if self.held is not None:
            self.held.drop()


class _HeldStderr:
    """Holds back what Python code writes to `sys.stderr` after a Ctrl-C, until the command ends.

    A Ctrl-C lands wherever the main thread is. Inside a library it can come
    out as another exception, which the library may print before passing it
    on: TensorFlow's SavedModel writer prints the traceback of any error
    while it traces gradients (`save.py`, `traceback.print_exc()`), a
    SystemError when the KeyboardInterrupt came during an import. A command
    that ends interrupted drops what was held and says `interrupted`; one
    that ends normally (predict stopping a camera with Ctrl-C and summing up)
    writes it all out. Only Python's `sys.stderr` is held: what C++ writes
    to the file descriptor (TensorFlow's log lines) is not Python's to hold.
    """

    def __init__(self):
        self.real = None
        self.buffer = None

    def start(self):
        if self.real is None:
            self.real, self.buffer = sys.stderr, _Buffer(sys.stderr)
            sys.stderr = self.buffer

    def drop(self):
        if self.real is not None:
            sys.stderr, self.real, self.buffer = self.real, None, None

    def release(self):
        if self.real is not None:
            held = self.buffer.getvalue()
            self.drop()
            sys.stderr.write(held)
            sys.stderr.flush()


class _Buffer(io.StringIO):
    """A StringIO that answers `fileno` and `isatty` as the stream it stands in for (a progress bar asks)."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream

    def fileno(self):
        return self.stream.fileno()

    def isatty(self):
        return self.stream.isatty()


class ArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose float flags must be finite: `--threshold nan` is a ValueError.

    argparse's `type=float` takes "nan", "inf" and "-inf"; a threshold of nan
    then compares false with every score and a report is computed with it.
    The check runs on every parsed value of a flag declared `type=float`,
    after parsing, so the error is the command's one `error:` line (through
    `run`), not argparse's usage block.
    """

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        for action in self._actions:
            if action.type is not float or not action.option_strings:
                continue
            value = getattr(namespace, action.dest, None)
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, float) and not math.isfinite(item):
                    raise ValueError(f"{action.option_strings[-1]} must be a finite number, got {item}.")
        return namespace, extras


def user_message(error):
    """The one-line message for a user error, or None for a bug."""
    if isinstance(error, OSError) and getattr(error, "filename", None) is not None:
        # "[Errno 28] No space left on device: 'runs/x/model.keras'" -> name first, then the problem.
        names = " -> ".join(os.fsdecode(n) for n in (error.filename, error.filename2) if n is not None)
        return f"{names}: {error.strerror or error}"
    if isinstance(error, USER_ERRORS):
        return str(error) or type(error).__name__
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(error, tf.errors.OpError):
        text = error.message or str(error)
        found = _ASSERTION.search(text)
        if found:
            return f"{found['path']}: {found['problem']}"
        if isinstance(error, (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError)):
            # A full disk, a read-only folder, memory: the first line names the file or the tensor.
            return text.strip().splitlines()[0].strip()
        if any(op in text for op in _DATA_OPS):
            first = _TF_WRAPPING.sub("", text.strip().splitlines()[0]).strip()
            found = _NOT_FOUND.fullmatch(first)
            if found:  # a file removed after the source was read
                return f"{found['path']}: no such file"
            return (
                f"TensorFlow could not read the data: {first} "
                "(python -m locnet_tf.data SPEC checks every file of a source)"
            )
    return None


# What tf.data wraps an op's own message in, e.g. "{{function_node ...}} Error
# in user-defined function passed to MapDataset:5 transformation with
# iterator: Iterator::Root::Map: ".
_TF_WRAPPING = re.compile(
    r"\{\{function_node [^}]*\}\}|Error in user-defined function passed to .*? "
    r"transformation with iterator: \S+: "
)
_NOT_FOUND = re.compile(r"(?P<path>.+); No such file or directory")


# What training, evaluation and export import that the base install (the
# device runtime: numpy, Pillow, LiteRT) leaves out.
TRAIN_EXTRA = ("tensorflow", "keras")


def require_train_extra(command):
    """Exits with one `error:` line when `python -m COMMAND` cannot run on this install (no TensorFlow).

    See `locnet_tf.core.tf_required`, which calls it before a command's own
    imports would end in a ModuleNotFoundError traceback.
    """
    missing = []
    for name in TRAIN_EXTRA:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    if missing:
        print(
            f"error: python -m {command} needs {' and '.join(missing)}, which the base install (it runs "
            f'.tflite models only) leaves out: install the train extra (in the clone: pip install ".[train]")',
            file=sys.stderr,
        )
        raise SystemExit(1)


def _quiet_interrupt(previous):
    """A `sys.excepthook` that ends an uncaught Ctrl-C in one line (the rest go to `previous`)."""

    def hook(kind, value, traceback):
        if issubclass(kind, KeyboardInterrupt) and not _show_traceback():
            print("interrupted", file=sys.stderr)
            return
        previous(kind, value, traceback)

    return hook


# Ctrl-C before `run` starts (while `python -m locnet_tf.train` imports TensorFlow, say) is not
# inside `run`: when a locnet_tf command is the program, the interpreter's last word on it is one line
# too. Python still exits as a process stopped by SIGINT (status 130 in a shell).
_RUNNING = getattr(getattr(sys.modules.get("__main__"), "__spec__", None), "name", None) or ""
if _RUNNING.startswith("locnet_tf."):
    sys.excepthook = _quiet_interrupt(sys.excepthook)
