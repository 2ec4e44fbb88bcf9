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
`locnet_tf.data.readers.entries` for the rules they share (class names and
`class_map`, unknown labels, the multi-object policy, background images, image
checks, box tolerance, splits, `skip_bad`). Each reader's docstring says where it
looks for images. `tfds:` specs give `tf.data` example dicts instead, through
`locnet_tf.data.readers.tfds_source.tfds_examples`.

The Caltech photos beside the repo load as shipped with::

    load_source("csv:../shared/data/caltech101_loc", skip_bad=True)
    python -m locnet_tf.data csv:../shared/data/caltech101_loc --skip-bad

(``skip_bad`` because one airplane annotation has a zero-height box; it is
left out and reported.)
"""

from locnet_tf.core.specs import (  # noqa: F401  (the SPEC strings themselves; `sources.parse_spec` as before)
    BUILTIN_BUILDERS,
    BUILTIN_KINDS,
    FILE_KINDS,
    parse_class_map,
    parse_spec,
)
from locnet_tf.data.readers import coco, csv_source, voc, yolo
from locnet_tf.data.readers import entries as su

READERS = {
    "csv": csv_source.read_csv,
    "voc": voc.read_voc,
    "coco": coco.read_coco,
    "yolo": yolo.read_yolo,
}


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
