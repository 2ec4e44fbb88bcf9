"""Data sources: one entry point, `load_source(spec)`, for every file format.

==================  ==========================================  =====================
SPEC                what it reads                               module
==================  ==========================================  =====================
``csv:PATH``        CSV file or folder of ``annotations/*.csv``  ``csv_source``
``voc:DIR``         Pascal VOC XML files                        ``voc``
``coco:PATH.json``  a COCO instances JSON                       ``coco``
``yolo:PATH``       ``data.yaml`` or images/ + labels/ folders  ``yolo``
``tfds:NAME``       a TFDS catalog dataset (example dicts)      ``tfds_source``
==================  ==========================================  =====================

File formats give a `SourceData` of validated records; see
`locnet_tf.data.source_utils` for the rules they share (class names and
`class_map`, unknown labels, the multi-object policy, background images, image
checks, box tolerance, splits, `skip_bad`). Each reader's docstring says where it
looks for images. `tfds:` specs give `tf.data` example dicts instead, through
`locnet_tf.data.tfds_source.tfds_examples`.

The Caltech photos beside the repo load as shipped with::

    load_source("csv:../shared/data/caltech101_loc", skip_bad=True)
    python -m locnet_tf.data csv:../shared/data/caltech101_loc --skip-bad

(``skip_bad`` because one airplane annotation has a zero-height box; it is
left out and reported.)
"""

import difflib

from locnet_tf.data import coco, csv_source, voc, yolo
from locnet_tf.data import source_utils as su

READERS = {
    "csv": csv_source.read_csv,
    "voc": voc.read_voc,
    "coco": coco.read_coco,
    "yolo": yolo.read_yolo,
}
FILE_KINDS = tuple(READERS)
# Generated locally by the package's own TFDS builders (`BUILTIN_BUILDERS`).
BUILTIN_KINDS = ("synthetic", "procedural")
BUILTIN_BUILDERS = {"synthetic": "synthetic_road", "procedural": "procedural_objects"}


def parse_spec(spec):
    """Splits a SPEC into `(kind, rest)`: `"csv:a/b.csv"` -> `("csv", "a/b.csv")`.

    `"synthetic"` and `"synthetic/CONFIG"` give `("synthetic", CONFIG or "")`;
    `"procedural[/CONFIG]"` (the pretraining pictures) gives `("procedural", ...)`.

    Raises:
        ValueError: for an unknown kind, with the list of known ones.
    """
    spec = str(spec)
    for builtin in BUILTIN_KINDS:
        if spec == builtin or spec.startswith(builtin + "/"):
            return builtin, spec.partition("/")[2]
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in FILE_KINDS + ("tfds",) or not rest:
        known = FILE_KINDS + ("tfds",) + BUILTIN_KINDS
        close = difflib.get_close_matches(kind.lower() if sep else spec.split("/")[0].lower(), known, n=1)
        hint = ""
        if close and close[0] in BUILTIN_KINDS:
            hint = f" Did you mean {close[0]!r}?"
        elif close:
            hint = f" Did you mean '{close[0]}:{rest if sep else spec}'?"
        raise ValueError(
            f"Unknown data spec {spec!r}.{hint} Use 'synthetic', 'tfds:NAME[/CONFIG]', "
            "'csv:PATH', 'voc:DIR', 'coco:PATH.json' or 'yolo:PATH'."
        )
    return kind, rest


def load_source(
    spec,
    *,
    class_names=None,
    class_map=None,
    unknown="error",
    multi_object="largest",
    skip_bad=False,
    splits=(0.8, 0.1, 0.1),
    seed=0,
    box_tolerance=su.BOX_TOLERANCE,
    verify_images=True,
):
    """Loads a file-based source into validated records.

    Args:
        spec: str. `csv:PATH`, `voc:DIR`, `coco:PATH.json` or `yolo:PATH`.
        class_names: sequence of str. The target classes, in order; None takes
            them from the data.
        class_map: dict label -> label (rename or merge) or None (ignore those
            objects), applied before matching `class_names`.
        unknown: "error" (default) or "ignore_object": what to do with a label
            not in `class_names`.
        multi_object: "largest" (default), "drop" or "fail".
        skip_bad: bool. Leave bad entries out (listed in `skipped`, logged)
            instead of raising `DataError`.
        splits: (train, validation, test) fractions for formats without splits.
        seed: int. Seed of the hash split.
        box_tolerance: float. Fraction of the image a box may run past an
            edge before it is an error (it is clipped).
        verify_images: bool. Decode every image fully (finds truncated and
            corrupt files; default). False reads headers and file ends only.

    Returns:
        SourceData: records per split ("train", "validation", "test"),
        class names, skipped entries.

    Raises:
        DataError: bad data (naming the file and line or object), unless
            `skip_bad`.
        ValueError: a malformed spec or option.
    """
    kind, path = parse_spec(spec)
    su.check_options(multi_object, unknown, splits)
    if kind not in READERS:
        raise ValueError(
            f"{spec!r} is not a file source; for {kind!r} specs use "
            "locnet_tf.data.pipeline.examples (or tfds_source.tfds_examples)."
        )
    return READERS[kind](
        path,
        class_names=class_names,
        class_map=class_map,
        unknown=unknown,
        skip_bad=skip_bad,
        multi_object=multi_object,
        splits=splits,
        seed=seed,
        box_tolerance=box_tolerance,
        verify_images=verify_images,
    )


def parse_class_map(text):
    """`"person=pedestrian,motorbike=motorcycle,cat="` -> dict (empty value -> None)."""
    mapping = {}
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        source, sep, target = item.partition("=")
        if not sep or not source.strip():
            raise ValueError(f"class map entries look like 'old=new' (or 'old=' to ignore), got {item!r}")
        mapping[source.strip()] = target.strip() or None
    return mapping
