"""What the command-line entry points share: a user's mistake as one line, not a traceback.

`python -m locnet_tf.train|evaluate|export|predict|demo` run their `main`
through `run`: bad data (`DataError`, which names the file and the problem), a
missing file, or a bad setting (`ValueError`) prints `error: ...` and exits
with status 1. `LOCNET_TF_TRACEBACK=1` shows the traceback instead. Calling
`main(argv)` from Python still raises, so notebooks and tests see the exception.
"""

import os
import sys

from locnet_tf.data.records import DataError

TRACEBACK_ENV = "LOCNET_TF_TRACEBACK"
USER_ERRORS = (DataError, FileNotFoundError, ValueError)


def run(main, argv=None, skip_bad_hint=False):
    """Runs `main(argv)` and returns its exit status; user errors become `error: ...` on stderr.

    `skip_bad_hint`: the command reads data sources and has `--skip-bad`, so
    a `DataError` also says what that flag does.
    """
    try:
        return main(argv)
    except USER_ERRORS as error:
        if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            raise
        message = str(error) or type(error).__name__
        if skip_bad_hint and isinstance(error, DataError):
            message += "\n(--skip-bad leaves bad entries out and lists them; python -m locnet_tf.data SPEC checks a source)"
        print(f"error: {message}", file=sys.stderr)
        print(f"({TRACEBACK_ENV}=1 shows the traceback)", file=sys.stderr)
        return 1
