"""Export a trained model to SavedModel and TFLite, and prove the exports agree with it.

    python -m locnet_tf.export runs/latest/model.keras --out export/latest
    python -m locnet_tf.export model.keras --formats tflite --quantize float32,int8 --data synthetic/tiny

What lands in the export folder (`export/NAME` by default)::

    saved_model/            serving_default: uint8 images, any size, batch -> named outputs
                            serving_fixed:   float32 images at the model size (0..255)
    model_float32.tflite    built-in ops only, one signature "serving_default", batch 1,
    model_float16.tflite    float32 input 0..255 (int8: uint8 input), named outputs;
    model_dynamic.tflite    each carries its own metadata inside (classes, threshold,
    model_int8.tflite       input, resize, box format, source hash: `tflite_metadata`)
                            int8: full-integer, calibrated on training images
    metadata.json           classes, input, box format, threshold, source hash, parity,
                            every file's sha256
    parity.json             the parity report alone
    labels.txt  README.md   one class per line; a generated model card

Every output is named: `p_c`, `box` (`[b_x, b_y, b_h, b_w]` relative),
`box_xyxy` (relative corners), `class_id`, `class_scores`. Pixel scaling is
inside the model, so no export needs outside normalisation.

The parity report runs every exported format on the test split of the model's
data beside the Keras model. The export fails (`ExportError`, exit code 1)
when a gate is missed (float32 differs by more than 1e-4, float16 boxes agree
with Keras below IoU 0.98, int8 loses more than one point of localization
accuracy). Everything is written to a temporary folder beside the target and
moved into place only when complete, so a failed export leaves no half-written
folder and a previous export intact. The folder is replaced only when it is
new, empty or an earlier export, holding nothing export did not write
(`locnet_tf.core.outputs.claim_folder`); the export marks it as its own
(`.locnet_tf.json`).

This module runs the steps and holds the command line; each step is its own
module: `export_convert` (SavedModel, TFLite), `export_parity` (the checks and
gates), `model_card` (metadata.json, the model card).
"""

from locnet_tf.core import tf_required as _tf_required  # noqa: F401  (first: `python -m` without TensorFlow says what to install)
import errno
import os
import pathlib
import secrets
import shutil

try:
    import fcntl  # POSIX: locks that say an export folder is in use (see WorkFolder)
except ImportError:  # Windows
    fcntl = None

import tensorflow as tf

from locnet_tf.evaluate import predictor as inference
from locnet_tf.model import network as model_lib
from locnet_tf.core import outputs as outputs_lib
from locnet_tf.runtime import metadata as tflite_metadata
from locnet_tf.core.command_configs import ExportConfig
from locnet_tf.export.model_card import export_metadata, tflite_file_metadata, write_text_files
from locnet_tf.export.convert import (
    ExportError,
    convert_tflite,
    representative_dataset,
    write_saved_model,
    write_tflite_source,
)
from locnet_tf.core.command_configs import FORMATS, QUANTIZATIONS
from locnet_tf.export.parity import (
    Gates,
    check_gates,
    data_settings,
    format_table,
    keras_row,
    load_or_fail,
    load_split,
    run_formats,
)


def default_out(model_path):
    """`export/NAME`: the run folder's name for `RUN/model.keras`, else the file stem."""
    path = pathlib.Path(model_path)
    name = path.parent.name if path.stem == "model" and path.parent.name else path.stem
    return pathlib.Path("export") / name


def export_model(
    model_path,
    out=ExportConfig.out,
    *,
    formats=ExportConfig.formats,
    quantize=ExportConfig.quantize,
    data=ExportConfig.data,
    data_dir=ExportConfig.data_dir,
    skip_bad=ExportConfig.skip_bad,
    split=ExportConfig.split,
    calibration_samples=ExportConfig.calibration_samples,
    parity_samples=ExportConfig.parity_samples,
    gates=Gates(),
    num_threads=ExportConfig.threads,
    verbose=not ExportConfig.quiet,
):
    """Exports a `.keras` model, checks every export against it, and writes the folder.

    Args:
        model_path: str or Path of a `.keras` file.
        out: output folder; default `export/NAME` (see `default_out`).
        formats: iterable of `"saved_model"`, `"tflite"`.
        quantize: iterable of TFLite quantizations (`QUANTIZATIONS`).
        data: a data SPEC for calibration and parity; default: `config.json`
            beside the model, else `"synthetic"`.
        data_dir: TFDS data folder for `synthetic` / `tfds:` specs.
        skip_bad: bool or None. Leave bad annotations and images out (reported)
            instead of failing; None: the run's setting for its own data.
        split: str. The split the parity report runs on.
        calibration_samples: int. Training images used to calibrate int8.
        parity_samples: int or None (the whole split).
        gates: `Gates`.
        num_threads: int. LiteRT threads while checking TFLite files.
        verbose: bool. Print progress and the parity table.

    The defaults are `ExportConfig`'s, the command's.

    Returns:
        The metadata dict (also written as `metadata.json`), with `"path"` set
        to the export folder. Its `export_config` holds the `ExportConfig` the
        export ran with, resolved: the data, TFDS folder and `skip_bad` it
        checked with, the gates, the folder.

    Raises:
        ExportError: a conversion failed, an exported file did not load, or a
            parity gate was missed. Nothing is left at `out` except what was
            there before.
    """
    model_path = pathlib.Path(model_path)
    if model_path.suffix != ".keras":
        raise ValueError(f"Export needs a .keras model file, got {str(model_path)!r}.")
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: no such model file.")
    formats = tuple(formats)
    quantize = tuple(quantize) if "tflite" in formats else ()
    unknown = (set(formats) - set(FORMATS)) | (set(quantize) - set(QUANTIZATIONS))
    if unknown:
        raise ValueError(
            f"Unknown formats / quantizations {sorted(unknown)}; choose from {FORMATS} and {QUANTIZATIONS}."
        )
    if not formats:
        raise ValueError("Nothing to export: give at least one format.")
    if calibration_samples < 1:
        raise ValueError("calibration_samples must be at least 1.")
    out = pathlib.Path(out) if out else default_out(model_path)
    log = print if verbose else (lambda *a, **k: None)

    # Before the model is loaded and the data read: a new, empty or earlier export folder, holding no input.
    inputs = [(model_path, "the model")]
    outputs_lib.claim_folder(out, "export", inputs)

    model = inference.load_keras(model_path)
    image_size = int(model.input_shape[1])
    class_names = model_lib.class_names(model)
    threshold = model_lib.presence_threshold(model)
    settings = data_settings(model_path, data, data_dir, skip_bad)
    # The model's own resize wins over its run's config.json (a model saved by 0.2.0 or earlier records none).
    settings["resize"] = inference.keras_resize(model, model_path)
    inputs += outputs_lib.data_inputs(settings["data"], settings["data_dir"])
    outputs_lib.check_not_input(out, inputs)

    out.parent.mkdir(parents=True, exist_ok=True)
    # A SavedModel and each .tflite are at most about the .keras file's size.
    needed = (1 + len(quantize) + 2) * model_path.stat().st_size + 16_000_000
    outputs_lib.check_free_space(out, needed, "the export")
    folder = WorkFolder(out, log=log)
    work = folder.path
    try:
        log(f"Exporting {model_path} ({image_size}px, classes {class_names}) to {out}")
        saved_model_dir = work / "saved_model"
        if "saved_model" in formats:
            write_saved_model(model, saved_model_dir, resize=settings["resize"])
        tflite_source = work / ".tflite_source"
        if quantize:
            write_tflite_source(model, tflite_source)

        files = {}
        calibration_used = None
        for quantization in quantize:
            log(f"  converting TFLite {quantization}")
            representative = None
            if quantization == "int8":
                representative, calibration_used = representative_dataset(
                    settings, image_size, class_names, calibration_samples
                )
            try:
                content = convert_tflite(tflite_source, quantization, representative)
            except Exception as error:  # the converter raises several types
                raise ExportError(f"TFLite {quantization} conversion failed: {_first_lines(error)}") from error
            name = f"model_{quantization}.tflite"
            # The file describes itself, so it works when copied alone.
            info = tflite_file_metadata(model, model_path, settings["resize"], quantization)
            content = load_or_fail(lambda content=content, info=info: tflite_metadata.embed(content, info), name)
            (work / name).write_bytes(content)
            files[name] = quantization

        log(f"  parity on {settings['data']!r} ({split})")
        images, targets = load_split(settings, split, image_size, class_names, limit=parity_samples)
        keras_out = inference.KerasRunner(model)(images)
        parity = {"keras": keras_row(targets, keras_out, threshold)}
        parity |= run_formats(
            images,
            targets,
            keras_out,
            threshold,
            saved_model_dir if "saved_model" in formats else None,
            {work / name: quantization for name, quantization in files.items()},
            num_threads=num_threads,
        )
        log(format_table(parity))

        failures = check_gates(parity, gates)
        if failures:
            raise ExportError(
                f"Export failed its parity gates ({out} was left as it was):\n  - " + "\n  - ".join(failures)
            )

        shutil.rmtree(tflite_source, ignore_errors=True)
        export_config = ExportConfig(
            out=str(out),
            formats=formats,
            quantize=quantize,
            data=settings["data"],
            data_dir=settings["data_dir"],
            skip_bad=bool(settings["source_kwargs"].get("skip_bad", False)),
            split=split,
            calibration_samples=calibration_samples,
            parity_samples=parity_samples,
            max_float32_diff=gates.float32_max_abs_diff,
            min_float16_iou=gates.float16_min_box_iou,
            max_int8_loc_drop=gates.int8_max_loc_drop,
            threads=num_threads,
            quiet=not verbose,
        ).to_dict()
        metadata = export_metadata(
            model_path,
            model,
            settings,
            split,
            len(images),
            formats,
            files,
            work,
            calibration_used,
            gates,
            parity,
            export_config=export_config,
        )
        write_text_files(work, metadata)
        if "saved_model" in formats:
            # TF Serving's place for extra files; lets the SavedModel travel alone.
            (work / "saved_model" / "assets.extra").mkdir(exist_ok=True)
            shutil.copy(work / inference.METADATA, work / "saved_model" / "assets.extra" / inference.METADATA)
        outputs_lib.mark_folder(work, "export")
        outputs_lib.claim_folder(out, "export", inputs)  # again: files may have been added while it ran
        folder.move_into_place()
    except (OSError, tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError) as error:
        # A full disk, say (TensorFlow's writers raise their own errors): nothing of this export is left behind.
        folder.remove()
        if isinstance(error, OSError) and error.errno not in _WRITE_ERRORS:
            raise  # not about writing (a data file that went missing, say): as it is
        reason = error.strerror if isinstance(error, OSError) else error.message.rsplit(";", 1)[-1].strip()
        raise OSError(
            getattr(error, "errno", None) or errno.EIO,
            f"cannot write the export ({reason or error}); nothing was written and any previous export is as it was",
            str(out),
        ) from error
    except BaseException:
        folder.remove()
        raise
    log(f"Export written to {out}")
    return metadata | {"path": str(out)}


def _first_lines(error, count=6):
    # Converter errors carry the whole MLIR module; the cause is at the top.
    lines = [line for line in str(error).splitlines() if line.strip()]
    return "\n".join(lines[:count]) + ("\n..." if len(lines) > count else "")


# ----------------------------------------------------------------------------
# The folder an export is written into.


# The errors of a write that the file system refused.
_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO)


class WorkFolder:
    """The temporary folder an export is written into, beside `out`, and its lock.

    `.NAME.partial-TOKEN/` holds the export while it is being made; the file
    `.NAME.partial-TOKEN.lock` beside it stays locked (`fcntl.flock`) for as
    long as the exporting process lives, which says the folder is in use.
    Folders of the same NAME whose lock is free (their process died: killed,
    the machine rebooted) or missing are stale: they are removed when the
    next export of NAME starts, and only they (an export running in another
    process keeps its folder; other names are not looked at). The previous
    export, moved aside while the new one is moved in, waits as
    `.NAME.partial-TOKEN.previous/`; if the process dies right then, the next
    export puts it back when `out` is missing.

    Hand-written because no library offers "a temporary folder that another
    process can tell is abandoned"; `tempfile` folders are anonymous. Where
    `fcntl` is missing (Windows), stale folders are left for the user to remove.
    """

    def __init__(self, out, log=print):
        self.out = pathlib.Path(out)
        self.prefix = f".{self.out.name}.partial-"
        self._remove_stale(log)
        token = secrets.token_hex(6)
        self.path = self.out.parent / f"{self.prefix}{token}"
        self.lock_path = self.out.parent / f"{self.prefix}{token}.lock"
        self.previous = self.out.parent / f"{self.prefix}{token}.previous"
        self._lock = None
        if fcntl is not None:
            # Locked under a name the stale-folder scan ignores, then renamed:
            # no other process can see the lock file unlocked.
            locking = self.out.parent / f".{self.out.name}.locking-{token}"
            self._lock = os.open(locking, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            os.replace(locking, self.lock_path)
        self.path.mkdir()

    def move_into_place(self):
        """Replaces `out` with the finished export (the old one, if any, is removed afterwards)."""
        moved = False
        if self.out.exists():
            os.replace(self.out, self.previous)
            moved = True
        try:
            os.replace(self.path, self.out)
        except BaseException:
            if moved:
                os.replace(self.previous, self.out)
            raise
        if moved:  # the new export is in place; an old one left half-removed goes with the next export
            shutil.rmtree(self.previous, ignore_errors=True)
        self._unlock()

    def remove(self):
        """Removes the unfinished export (after a failure)."""
        shutil.rmtree(self.path, ignore_errors=True)  # it may be half-written: remove what is there
        self._unlock()

    def _unlock(self):
        if self._lock is not None:
            self.lock_path.unlink(missing_ok=True)
            os.close(self._lock)
            self._lock = None

    def _remove_stale(self, log):
        if fcntl is None or not self.out.parent.is_dir():
            return
        for lock in sorted(self.out.parent.glob(f".{self.out.name}.locking-*")):
            if outputs_lib.lock_is_free(lock):
                lock.unlink(missing_ok=True)
        tokens = set()
        for entry in self.out.parent.glob(f"{self.prefix}*"):
            token = entry.name[len(self.prefix) :]
            for ending in (".lock", ".previous"):
                token = token[: -len(ending)] if token.endswith(ending) else token
            tokens.add(token)
        for token in sorted(tokens):
            work = self.out.parent / f"{self.prefix}{token}"
            lock, previous = work.with_name(work.name + ".lock"), work.with_name(work.name + ".previous")
            if lock.exists() and not outputs_lib.lock_is_free(lock):
                continue  # another export is writing it
            if previous.is_dir():
                if self.out.exists():
                    shutil.rmtree(previous)
                else:  # killed between moving the old export aside and the new one in
                    os.replace(previous, self.out)
                    log(f"Put {self.out} back as it was before an export that was killed.")
            if work.is_dir():
                shutil.rmtree(work)
                log(f"Removed {work}, left by an export that did not finish.")
            lock.unlink(missing_ok=True)


# ----------------------------------------------------------------------------
# Command line.
