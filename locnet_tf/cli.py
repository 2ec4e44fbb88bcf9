"""What the command-line entry points share: a user's mistake as one line, not a traceback.

`python -m locnet_tf.train|evaluate|export|predict|data|demo` run their `main`
through `run`, which prints `error: ...` (naming the file, and the line or
object, and the problem) and exits with status 1 for:

- bad data (`DataError`) and a bad setting (`ValueError`);
- the file system refusing a read or a write (`OSError`: a missing file, a
  read-only folder, a full disk, a file where a folder should be);
- TensorFlow's data pipeline stopping on a file (its checks name the file;
  `locnet_tf.data.pipeline.read_image`).

`LOCNET_TF_TRACEBACK=1` shows the traceback instead. Calling `main(argv)`
from Python still raises, so notebooks and tests see the exception. Anything
else is a bug and keeps its traceback.
"""

import importlib.util
import os
import re
import sys

from locnet_tf.data.records import DataError

TRACEBACK_ENV = "LOCNET_TF_TRACEBACK"
USER_ERRORS = (DataError, ValueError, OSError)
# What `pipeline.read_image`'s checks say: "assertion failed: [PROBLEM:] [PATH]".
_ASSERTION = re.compile(r"assertion failed: \[(?P<problem>.+?):?\] \[(?P<path>.+?)\]")
# TensorFlow ops that read data files: their errors are about a file, not a bug.
_DATA_OPS = ("ReadFile", "Decode", "assertion failed", "IteratorGetNext", "MultiDeviceIteratorGetNextFromShard")


def run(main, argv=None, skip_bad_hint=False):
    """Runs `main(argv)` and returns its exit status; user errors become `error: ...` on stderr.

    `skip_bad_hint`: the command reads data sources and has `--skip-bad`, so
    a `DataError` also says what that flag does.
    """
    try:
        return main(argv)
    except Exception as error:  # sorted out by `message`; anything else is re-raised
        message = user_message(error)
        if message is None or os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            raise
        if skip_bad_hint and isinstance(error, DataError):
            message += (
                "\n(--skip-bad leaves bad entries out and lists them; python -m locnet_tf.data SPEC checks a source)"
            )
        print(f"error: {message}", file=sys.stderr)
        print(f"({TRACEBACK_ENV}=1 shows the traceback)", file=sys.stderr)
        return 1


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

    See `locnet_tf._tf_required`, which calls it before a command's own
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
            f'.tflite models only) leaves out: pip install "locnet_tf[train]"',
            file=sys.stderr,
        )
        raise SystemExit(1)
