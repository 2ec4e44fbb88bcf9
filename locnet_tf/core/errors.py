"""The input errors: bad data, a bad image file, a bad box, a multi-object policy that says stop.

Each is a `ValueError` whose message names the file (and line or object) and the problem, so
that `core/cli.py` turns it into one `error:` line. They live here, on the lowest floor, so
that every module that raises or catches them (the readers, the image checks, the geometry,
the pipeline, the commands) imports them from one place; this module imports nothing of the
package.

Not here: errors that belong to one command and are raised and caught inside it, such as
export's `ExportError` (`locnet_tf/export/convert.py`) and serve's `UploadError`
(`locnet_tf/serve.py`).
"""


class DataError(ValueError):
    """Bad input data. The message names the file (and line or object) and the problem."""


class EmptySplitError(DataError):
    """A split of a source has no images (a YOLO `data.yaml` without `test:`, say)."""


class ImageError(DataError):
    """A bad image file: `name` (the file, as the caller named it) and `problem`."""

    def __init__(self, name, problem):
        super().__init__(f"{name}: {problem}")
        self.name, self.problem = name, problem


class BoxError(ValueError):
    """A box that cannot be right: the message says which box and why."""


class PolicyError(DataError):
    """Raised by `multi_object="fail"`: never skipped, even with `skip_bad=True`."""
