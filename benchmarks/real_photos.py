"""The default command against the lecture's network, on real photos, in one run.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/real_photos.py
        [--sets tiny_imagenet_loc,hands_loc,caltech101_loc,hands363]
        [--data-root ../shared/data] [--out runs/real_photos] [--systems default,scratch,lecture] [--seed 0]

For each set of `../shared/data` it trains three systems and evaluates each on the
set's test split:

- `default`: the package's default command, exactly as a user types it,
  `python -m locnet_tf.train --data SPEC --out DIR` (Caltech adds `--skip-bad`:
  one of its boxes has zero height), timed as a whole command (reading the
  data, training, calibrating; the test report is read from its report.json).
  For real photos it fine-tunes the pretrained EfficientNet-Lite0.
- `scratch`: the same command with `--backbone simple`: the from-scratch
  real-photo recipe (the default before the pretrained one).
- `lecture`: the lecture's network, written out below: four stages of 3x3 conv
  (ReLU, 'same') + 2x2 max-pool with 32, 64, 128, 256 filters, flatten, dense
  256 (ReLU), dense 5 + K (linear), `LocalizationLoss(mode="lecture")`, Adam
  1e-3, batch 32, trained on train + validation, 40 epochs at 128 px (20 at 64
  px for sets of 64 px images, such as Tiny ImageNet); presence threshold 0.5.
  Its time counts the training epochs only (the data are decoded and cached
  first), which favours it.

`hands363` is issue 29's few-hundred-photo proxy: a random 363 of hands_loc's
training photos (`random.Random(0).sample` of the sorted ids) with hands_loc's
own validation and test photos, written as a Pascal VOC folder under
`OUT/data/hands363` whose photos and annotations are links to hands_loc's.

Prints JSON: per set, each system's `loc`, `iou`, `class`, `p_c` (the
evaluation report's `loc_accuracy`, `mean_iou`, `class_accuracy`,
`pc_accuracy`) and `train_seconds`, and `ratios` (default / lecture) of each;
the two trained by the command also `loc_any_object` (`loc_accuracy_any_object`:
a box on any labelled object counts, as ImageNet's localization task counts);
plus the CPU it ran on. Compare the ratios within one run: these machines are
shared, and their speed changes from hour to hour.
"""

import argparse
import json
import os
import pathlib
import platform
import random
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parents[1]

# The sets of ../shared/data and how a user names them (see each README).
SETS = {
    "tiny_imagenet_loc": ("yolo:{root}/tiny_imagenet_loc", []),
    "hands_loc": ("voc:{root}/hands_loc", []),
    "caltech101_loc": ("csv:{root}/caltech101_loc", ["--skip-bad"]),
}
# Proxies cut from those sets: name -> (set, training photos kept, seed of the draw).
SUBSETS = {"hands363": ("hands_loc", 363, 0)}
METRICS = {"loc": "loc_accuracy", "iou": "mean_iou", "class": "class_accuracy", "p_c": "pc_accuracy"}


def cpu_name():
    """The CPU model and its vector extensions, as lscpu reports them."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or "unknown"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    family = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("cpu family")), "?")
    return f"{model} (family {family}; {os.cpu_count()} cores; {' '.join(simd)})"


def make_subset(root, out, name):
    """Writes the VOC proxy `name` (`SUBSETS`) under `out/data/` and returns its SPEC.

    Only `ImageSets/Main` is written; `JPEGImages` and `Annotations` are links
    to the whole set's (a VOC reader reads the photos the lists name). The
    lists are rewritten on every call, the same for the same set.
    """
    source, count, seed = SUBSETS[name]
    source = pathlib.Path(root) / source
    target = pathlib.Path(out) / "data" / name
    lists = source / "ImageSets" / "Main"
    ids = {split: (lists / f"{split}.txt").read_text().split() for split in ("train", "val", "test")}
    ids["train"] = sorted(random.Random(seed).sample(sorted(ids["train"]), count))
    (target / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for folder in ("JPEGImages", "Annotations"):
        link, whole = target / folder, source.resolve() / folder
        if not link.is_symlink() and not link.exists():
            link.symlink_to(whole, target_is_directory=True)
        elif link.resolve() != whole:  # not this function's link: use nobody's photos by mistake
            raise SystemExit(f"{link}: exists and is not a link to {whole}; choose another --out")
    for split, names in ids.items():
        (target / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return f"voc:{target}"


def run_default(spec, extra, out, seed):
    """The default command (`extra`: more flags) as a subprocess; returns its report figures and wall time."""
    command = [sys.executable, "-m", "locnet_tf.train", "--data", spec, "--out", str(out), "--quiet", *extra]
    if seed:
        command += ["--seed", str(seed)]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO)
    seconds = time.perf_counter() - start
    report = json.loads((pathlib.Path(out) / "report.json").read_text())
    config = json.loads((pathlib.Path(out) / "config.json").read_text())
    figures = {name: report[key] for name, key in METRICS.items()}
    if "loc_accuracy_any_object" in report:  # a box on any labelled object (sets with several per photo)
        figures["loc_any_object"] = report["loc_accuracy_any_object"]
    figures["train_seconds"] = round(seconds, 1)
    figures["image_size"] = config["image_size"]
    return figures


def lecture_network(image_size, num_classes):
    """The lecture's network: conv/pool x 4, flatten, dense 256, dense 5 + K (linear)."""
    import keras
    from keras import layers

    image = keras.Input((image_size, image_size, 3))
    x = layers.Rescaling(1.0 / 255.0)(image)
    for filters in (32, 64, 128, 256):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu")(x)
    return keras.Model(image, layers.Dense(5 + num_classes)(x), name="lecture")


def lecture_recipe(spec, extra):
    """(image size, epochs): 20 epochs at 64 px for 64 px photos, else 40 at 128 px."""
    from locnet_tf.data import pipeline

    dataset, _ = pipeline.examples(spec, "train", skip_bad="--skip-bad" in extra)
    sizes = [tuple(ex["image"].shape[:2]) for ex in dataset.take(50)]
    return (64, 20) if max(max(s) for s in sizes) <= 64 else (128, 40)


def run_lecture(spec, extra, seed):
    """Trains the lecture's network on train + validation, evaluates on test."""
    import keras
    import numpy as np

    from locnet_tf.evaluate import report as report_lib
    from locnet_tf.data import pipeline
    from locnet_tf.model.losses import LocalizationLoss

    keras.utils.set_random_seed(seed)
    image_size, epochs = lecture_recipe(spec, extra)
    common = dict(image_size=image_size, batch_size=32, skip_bad="--skip-bad" in extra, seed=seed)
    train = pipeline.make_dataset(spec, "train", augment=False, **common)
    val = pipeline.make_dataset(spec, "validation", augment=False, **common)
    names = train.class_names
    train = train.concatenate(val).shuffle(8192, seed=seed, reshuffle_each_iteration=True)
    test = pipeline.make_dataset(spec, "test", augment=False, shuffle=False, **common)
    for _ in train:  # decode and cache before the clock starts
        pass
    model = lecture_network(image_size, len(names))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=LocalizationLoss(mode="lecture"))
    start = time.perf_counter()
    model.fit(train, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    ys, ps = [], []
    for x, y in test:
        ys.append(y.numpy())
        ps.append(np.asarray(model(x, training=False)))
    report = report_lib.report_from_arrays(np.concatenate(ys), np.concatenate(ps), names, threshold=0.5)
    figures = {name: report[key] for name, key in METRICS.items()}
    figures.update(train_seconds=round(seconds, 1), image_size=image_size, epochs=epochs)
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sets", default=",".join(SETS), help=f"comma-separated names of ../shared/data sets, or of {list(SUBSETS)}"
    )
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(REPO / "runs" / "real_photos"), help="where the default command's runs go")
    parser.add_argument("--systems", default="default,scratch,lecture")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    systems = args.systems.split(",")
    results = {"cpu": cpu_name(), "seed": args.seed, "sets": {}}
    for name in args.sets.split(","):
        if name in SUBSETS:
            extra = SETS[SUBSETS[name][0]][1]
            spec = make_subset(args.data_root, args.out, name)
        else:
            pattern, extra = SETS[name]
            spec = pattern.format(root=args.data_root)
        entry = {"spec": spec}
        if "default" in systems:
            out = pathlib.Path(args.out) / name
            entry["default"] = run_default(spec, extra, out, args.seed)
        if "scratch" in systems:
            out = pathlib.Path(args.out) / f"{name}_scratch"
            entry["scratch"] = run_default(spec, extra + ["--backbone", "simple"], out, args.seed)
        if "lecture" in systems:
            entry["lecture"] = run_lecture(spec, extra, args.seed)
        if "default" in entry and "lecture" in entry:
            keys = list(METRICS) + ["train_seconds"]
            entry["ratios"] = {
                k: round(entry["default"][k] / entry["lecture"][k], 3) if entry["lecture"][k] else None for k in keys
            }
        results["sets"][name] = entry
        print(json.dumps({name: entry}), file=sys.stderr, flush=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
