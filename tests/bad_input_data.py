"""Small data sets and models that the bad-input tests (issue 22) break on purpose.

Everything is generated: a CSV source of tiny photos-like images, a YOLO
folder, a tiny untrained model and its float32 `.tflite`, read-only and full
folders (tmpfs mounts when the tests run as root, who ignores permission
bits), and the command runner that checks "one `error:` line, exit 1".
"""

import contextlib
import os
import pathlib
import shutil
import subprocess
import sys
import uuid

import numpy as np
from PIL import Image

CLASSES = ("car", "pedestrian")
IMAGE_SIZE = 32  # the tiny model's input
# Short runs where a case must train: the smoke preset, one step.
QUICK = ["--epochs", "1", "--steps-per-epoch", "1", "--validation-steps", "1"]
QUICK += ["--no-calibrate", "--no-evaluate", "--quiet"]


def train_argv(spec, out, *extra):
    """`python -m locnet_tf.train`'s arguments for the smoke preset on `spec`."""
    return ["--preset", "smoke", "--data", spec, "--out", out, *extra]


def make_photo(path, seed, size=(48, 64), box=None, fmt=None):
    """A small noisy picture with a coloured rectangle; returns its box (x1, y1, x2, y2) in pixels."""
    rng = np.random.default_rng(seed)
    height, width = size
    pixels = rng.integers(0, 90, (height, width, 3), dtype=np.uint8)
    if box is None:
        x1, y1 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
        box = (x1, y1, x1 + width // 3, y1 + height // 3)
    x1, y1, x2, y2 = box
    pixels[y1:y2, x1:x2] = (200, 40, 40) if seed % 2 else (40, 200, 40)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return box


def csv_source(root, count=12, suffixes=(".jpg", ".png")):
    """A `csv:` source: `root/images/imgNN.*` and `root/labels.csv` (with a header). Returns the spec."""
    root = pathlib.Path(root)
    rows = ["filename,x1,y1,x2,y2,label"]
    for i in range(count):
        name = f"img{i:02d}{suffixes[i % len(suffixes)]}"
        x1, y1, x2, y2 = make_photo(root / "images" / name, i)
        rows.append(f"{name},{x1},{y1},{x2},{y2},{CLASSES[i % 2]}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return f"csv:{root}"


def yolo_source(root, count=8, labels="labels", names=None):
    """A YOLO folder with `data.yaml` (train/val/test image folders). Returns the spec.

    `labels`: the name of the labels folder (misspell it to break the source).
    `names`: extra image file names (bytes or str) to add to the train split.
    """
    root = pathlib.Path(root)
    splits = ("train", "val", "test")
    for i in range(count):
        split = splits[i % 3] if i >= 3 else splits[i]
        _yolo_image(root, split, f"img{i:02d}.jpg", i, labels)
    for name in names or ():
        _yolo_image(root, "train", name, 99, labels)
    (root / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: images/val\ntest: images/test\nnames: [car, pedestrian]\n"
    )
    return f"yolo:{root}"


def _yolo_image(root, split, name, seed, labels):
    # bytes names (a Latin-1 file name) go to the file system as they are
    folder_b = os.fsencode(root / "images" / split)
    label_b = os.fsencode(root / labels / split)
    os.makedirs(folder_b, exist_ok=True)
    os.makedirs(label_b, exist_ok=True)
    name_b = os.fsencode(name)
    image_path = os.path.join(folder_b, name_b)
    x1, y1, x2, y2 = make_photo(os.fsdecode(image_path), seed, fmt="JPEG" if name_b.lower().endswith(b".jpg") else None)
    stem = os.path.splitext(name_b)[0]
    with open(os.path.join(label_b, stem + b".txt"), "w") as f:
        f.write(f"{seed % 2} {(x1 + x2) / 128:.4f} {(y1 + y2) / 96:.4f} {(x2 - x1) / 64:.4f} {(y2 - y1) / 48:.4f}\n")


def tiny_model(path, class_names=CLASSES):
    """Saves an untrained tiny locnet model (32 px) as `.keras`; returns the path."""
    import keras

    from locnet_tf.model import network as model_lib

    keras.utils.set_random_seed(0)
    model = model_lib.build_model(
        class_names=list(class_names),
        image_size=IMAGE_SIZE,
        filters=(4, 8, 8, 8),
        depths=(1, 1, 1),
        head_channels=8,
        head_units=8,
    )
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def tiny_tflite(model_path, out_path):
    """Converts the tiny model to a self-describing float32 `.tflite` (no parity run); returns the path."""
    import keras

    from locnet_tf.export import convert
    from locnet_tf.export import model_card
    from locnet_tf.runtime import metadata as tflite_metadata

    model = keras.models.load_model(model_path)
    source = pathlib.Path(out_path).parent / ".tflite_source"
    convert.write_tflite_source(model, source)
    content = convert.convert_tflite(source, "float32")
    content = tflite_metadata.embed(content, model_card.tflite_file_metadata(model, model_path, "stretch", "float32"))
    shutil.rmtree(source)
    pathlib.Path(out_path).write_bytes(content)
    return pathlib.Path(out_path)


# ----------------------------------------------------------------------------
# Folders that cannot be written.


@contextlib.contextmanager
def special_folder(kind, parent, size="256k"):
    """Yields a folder that is read-only (`kind="readonly"`) or nearly full (`kind="full"`).

    As root, permission bits do not stop writes, so a tmpfs is mounted
    (read-only, or `size` bytes). Yields None where neither works.
    """
    folder = pathlib.Path(parent) / f"{kind}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    if os.geteuid() != 0 and kind == "readonly":
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    options = "ro,size=64k" if kind == "readonly" else f"size={size}"
    mounted = (
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True).returncode
        == 0
    )
    try:
        yield folder if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


# ----------------------------------------------------------------------------
# Running a command as the command line does.

COMMANDS = {
    "D": ("locnet_tf.data.check", True),
    "T": ("locnet_tf.train.__main__", True),
    "E": ("locnet_tf.export.__main__", True),
    "P": ("locnet_tf.predict", False),
    "V": ("locnet_tf.evaluate.__main__", True),
}


def run_command(letter, argv):
    """Runs a command's `main` through `cli.run`, as `python -m` does; returns its exit status.

    D = locnet_tf.data (check), T = train, E = export, P = predict, V = evaluate.
    """
    import importlib

    from locnet_tf.core import cli

    module_name, skip_bad = COMMANDS[letter]
    module = importlib.import_module(module_name)
    if letter == "D":  # the check command runs through cli.run itself
        return module.main([str(a) for a in argv])
    return cli.run(module.main, [str(a) for a in argv], skip_bad_hint=skip_bad)


def run_subprocess(letter, argv, cwd=None, timeout=600):
    """The same as a separate `python -m` process: (exit status, stdout, stderr)."""
    module = {"D": "locnet_tf.data"}.get(letter, COMMANDS[letter][0].removesuffix(".__main__"))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-m", module, *map(str, argv)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        errors="replace",
    )
    return done.returncode, done.stdout, done.stderr


def error_lines(stderr):
    """The `error:` lines of a command's stderr."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]
