"""The check command: what is in a data source, and what is wrong with it.

    python -m locnet_tf.data SPEC [--split S] [--grid PATH.png] [--skip-bad]
                                  [--class-map a=b,c=] [--classes x,y,z]
                                  [--multi-object largest|drop|fail] [--quick]

prints counts per split and per class, the background share, the spread of box
sizes (relative area, width and height percentiles), the problems found
(entries skipped with `--skip-bad`, or images dropped by
`--multi-object drop`), and saves a grid of sample images with their boxes.

File specs (`csv:`, `voc:`, `coco:`, `yolo:`) go through `load_source`, with
every image fully decoded unless `--quick` (so truncated files are found).
`synthetic` and `tfds:` specs are read as example dicts through
`locnet_tf.data.pipeline.examples` (or `tfds_source.tfds_examples`); add
`--limit N` to look at the first N examples only.

Example, the Caltech photos beside the repo:

    python -m locnet_tf.data csv:../shared/data/caltech101_loc --skip-bad --grid caltech.png
"""

from locnet_tf.core import tf_required as _tf_required  # noqa: F401  (first: `python -m` without TensorFlow says what to install)
import argparse
import json
import sys

import numpy as np

from locnet_tf.core import image_files as image_lib
from locnet_tf.core import outputs
from locnet_tf.data.readers import entries as su
from locnet_tf.data import splits as splits_lib
from locnet_tf.data import sources

PERCENTILES = (5, 25, 50, 75, 95)


def _spread(values):
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return {}
    stats = {f"p{p}": float(np.percentile(values, p)) for p in PERCENTILES}
    stats.update(min=float(values.min()), max=float(values.max()))
    return stats


def summarize(columns, class_names):
    """Counts and box spread from per-split arrays.

    Args:
        columns: dict split -> (present bool[N], class_id int[N], box float[N, 4]).
        class_names: sequence of str.

    Returns:
        dict with "splits", "total", "background_share" and "box".
    """

    def counts(present, class_ids):
        per_class = np.bincount(class_ids[present], minlength=len(class_names))
        return {
            "images": int(present.size),
            "background": int((~present).sum()),
            "per_class": {name: int(n) for name, n in zip(class_names, per_class)},
        }

    splits = {name: counts(*cols[:2]) for name, cols in columns.items()}
    present = np.concatenate([c[0] for c in columns.values()]) if columns else np.zeros(0, bool)
    class_ids = np.concatenate([c[1] for c in columns.values()]) if columns else np.zeros(0, int)
    boxes = np.concatenate([c[2] for c in columns.values()]) if columns else np.zeros((0, 4))
    positives = boxes[present]
    total = counts(present, class_ids)
    return {
        "splits": splits,
        "total": total,
        "background_share": total["background"] / total["images"] if total["images"] else 0.0,
        "box": {
            "area": _spread(positives[:, 2] * positives[:, 3]),
            "height": _spread(positives[:, 2]),
            "width": _spread(positives[:, 3]),
        },
    }


def _record_columns(records):
    present = np.array([r.present for r in records], bool)
    class_ids = np.array([r.class_id for r in records], np.int64)
    boxes = np.array([r.box for r in records], np.float32).reshape(-1, 4)
    return present, class_ids, boxes


def _grid_from_records(records, class_names, path, count):
    if not records:
        raise ValueError("There are no records to draw.")
    from locnet_tf.core import figures as plots

    picks = [records[i] for i in np.unique(np.linspace(0, len(records) - 1, count).astype(int))]
    images = []
    for r in picks:
        images.append(image_lib.read_image(r.path))  # EXIF orientation applied, as the boxes assume
    return plots.draw_examples_grid(
        images,
        [r.box for r in picks],
        [r.class_id for r in picks],
        class_names,
        path,
        present=[r.present for r in picks],
        titles=[r.origin.split(" ")[0].rsplit("/", 1)[-1] for r in picks],
    )


def _example_dataset(spec, split, options, data_dir=None):
    from locnet_tf.data import pipeline

    return pipeline.examples(spec, split, data_dir=data_dir, **options)


def check_examples(
    spec, *, splits=("train", "validation", "test"), grid=None, limit=None, grid_size=16, data_dir=None, **options
):
    """`check` for example-dict sources (`synthetic`, `tfds:`): see `check`."""
    columns, class_names, picks = {}, None, []
    for split in splits:
        dataset, names = _example_dataset(spec, split, options, data_dir)
        class_names = class_names or names
        if limit:
            dataset = dataset.take(limit)
        present, class_ids, boxes = [], [], []
        for example in dataset.as_numpy_iterator():
            present.append(bool(example["present"]))
            class_ids.append(int(example["class_id"]))
            boxes.append(np.asarray(example["box"], np.float32))
            if grid and len(picks) < grid_size:
                picks.append(example)
        columns[split] = (
            np.array(present, bool),
            np.array(class_ids, np.int64),
            np.array(boxes, np.float32).reshape(-1, 4),
        )
    if class_names is None:
        highest = max((int(c[1].max()) for c in columns.values() if c[1].size), default=0)
        class_names = tuple(str(i) for i in range(highest + 1))
    report = {"spec": spec, "class_names": list(class_names), **summarize(columns, class_names)}
    report.update(skipped=0, problems=[], notes=[], grid=None)
    if grid:
        from locnet_tf.core import figures as plots

        report["grid"] = plots.draw_examples_grid(
            [p["image"] for p in picks],
            [p["box"] for p in picks],
            [int(p["class_id"]) for p in picks],
            class_names,
            grid,
            present=[bool(p["present"]) for p in picks],
        )
    return report


def check(
    spec,
    *,
    split=None,
    grid=None,
    skip_bad=False,
    class_map=None,
    class_names=None,
    multi_object="largest",
    unknown="error",
    verify_images=True,
    grid_size=16,
    limit=None,
    data_dir=None,
    print_fn=print,
):
    """Loads a source, prints a summary of it and returns it as a dict.

    Args:
        spec: str. A data SPEC (see DESIGN.md).
        split: str. Only this split ("train", "validation", "test"); default all.
        grid: str or Path. Save a PNG grid of sample images with boxes here.
        skip_bad: bool. Skip bad entries (reported) instead of stopping.
        class_map: dict or "a=b,c=" string. See `load_source`.
        class_names: sequence of str. See `load_source`.
        multi_object: "largest", "drop" or "fail".
        unknown: "error" or "ignore_object".
        verify_images: bool. Decode every image of file sources.
        grid_size: int. Number of images in the grid.
        limit: int. For example-dict sources, read at most this many per split.
        data_dir: str. TFDS data folder for `synthetic` and `tfds:` specs.
        print_fn: where the summary lines go (None: print nothing).

    Returns:
        dict: "spec", "class_names", "splits" (per split: "images",
        "background", "per_class"), "total", "background_share", "box"
        (percentiles of relative "area", "height", "width" of the boxes),
        "skipped" (count), "problems" ([origin, reason] pairs, all of them),
        "notes" (what the reader said about the data, e.g. YOLO images
        without a label file),
        "grid" (saved path or None).
    """
    if isinstance(class_map, str):
        class_map = sources.parse_class_map(class_map)
    kind, _ = sources.parse_spec(spec)
    options = dict(class_names=class_names, class_map=class_map, multi_object=multi_object, unknown=unknown)
    if kind in sources.FILE_KINDS:
        data = sources.load_source(spec, skip_bad=skip_bad, verify_images=verify_images, **options)
        wanted = [split] if split else list(data.records)
        missing = [s for s in wanted if s not in data.records]
        if missing:
            raise ValueError(f"{spec!r} has no split {missing[0]!r}; it has {list(data.records)}.")
        columns = {s: _record_columns(data.records[s]) for s in wanted}
        report = {"spec": spec, "class_names": list(data.class_names), **summarize(columns, data.class_names)}
        report.update(
            skipped=len(data.skipped),
            problems=[[origin, reason] for origin, reason in data.skipped],
            notes=list(data.notes),
            grid=None,
        )
        if grid:
            chosen = [r for s in wanted for r in data.records[s]]
            report["grid"] = _grid_from_records(chosen, data.class_names, grid, grid_size)
    else:
        report = check_examples(
            spec,
            splits=[split] if split else ("train", "validation", "test"),
            grid=grid,
            limit=limit,
            grid_size=grid_size,
            data_dir=data_dir,
            **options,
        )
    if print_fn is not None:
        for line in format_report(report):
            print_fn(line)
    return report


def format_report(report):
    """The report as readable lines."""
    names = report["class_names"]
    lines = [f"Source {report['spec']}: {len(names)} classes {names}"]
    header = f"  {'split':<11}{'images':>8}{'backgr.':>9}" + "".join(f"{n[:12]:>13}" for n in names)
    lines.append(header)
    for split, counts in list(report["splits"].items()) + [("total", report["total"])]:
        lines.append(
            f"  {split:<11}{counts['images']:>8}{counts['background']:>9}"
            + "".join(f"{counts['per_class'][n]:>13}" for n in names)
        )
    lines.append(f"  background share: {report['background_share']:.1%}")
    if report["box"]["area"]:
        lines.append("  box size (relative)  " + "  ".join(f"{k:>5}" for k in report["box"]["area"]))
        for key in ("area", "height", "width"):
            lines.append(f"    {key:<18}" + "  ".join(f"{v:5.3f}" for v in report["box"][key].values()))
    for note in report.get("notes", []):
        lines.append(f"  note: {note}")
    if report["skipped"]:
        count = report["skipped"]
        lines.append(f"  problems: {count} {'entry' if count == 1 else 'entries'} skipped:")
        lines += [f"    {reason}" for _, reason in report["problems"]]
    else:
        lines.append("  problems: none")
    if report["grid"]:
        lines.append(f"  sample grid saved to {report['grid']}")
    return lines


def main(argv=None):
    """Command line: `python -m locnet_tf.data SPEC ...` (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m locnet_tf.data", description="Summarize and check a data source.")
    parser.add_argument("spec", help="data SPEC: synthetic, tfds:NAME, csv:PATH, voc:DIR, coco:PATH.json, yolo:PATH")
    parser.add_argument("--split", choices=splits_lib.SPLITS, help="only this split (default: all)")
    parser.add_argument("--grid", help="save a sample grid with boxes to this PNG")
    parser.add_argument("--skip-bad", action="store_true", help="skip bad entries (they are reported)")
    parser.add_argument("--class-map", default=None, help="rename/merge labels: old=new,... (old= ignores)")
    parser.add_argument("--classes", default=None, help="the class list, comma-separated (default: from the data)")
    parser.add_argument("--multi-object", default="largest", choices=su.MULTI_OBJECT_POLICIES)
    parser.add_argument("--ignore-unknown", action="store_true", help="drop objects whose label is not a class")
    parser.add_argument("--quick", action="store_true", help="read image headers only (no full decode)")
    parser.add_argument("--limit", type=int, default=None, help="synthetic/tfds: at most N examples per split")
    parser.add_argument("--data-dir", default=None, help="synthetic/tfds: the TFDS data folder")
    parser.add_argument("--json", help="also write the report as JSON to this file")
    args = parser.parse_args(argv)
    from locnet_tf.core import cli

    return cli.run(lambda _: _main(args), skip_bad_hint=True)


def _main(args):
    # Before the source is read, which may take a while: new files, or the ones this command wrote, clear of the data.
    inputs = outputs.data_inputs(args.spec, args.data_dir)
    for flag, path in (("--grid", args.grid), ("--json", args.json)):
        if path:
            outputs.claim_file(path, f"data {flag}", inputs, flag)
    report = _run(args)
    if args.json:
        outputs.atomic_write(args.json, json.dumps(report, indent=2))
    return 0


def _run(args):
    return check(
        args.spec,
        split=args.split,
        grid=args.grid,
        skip_bad=args.skip_bad,
        class_map=args.class_map,
        class_names=args.classes.split(",") if args.classes else None,
        multi_object=args.multi_object,
        unknown="ignore_object" if args.ignore_unknown else "error",
        verify_images=not args.quick,
        limit=args.limit,
        data_dir=args.data_dir,
    )


if __name__ == "__main__":
    sys.exit(main())
