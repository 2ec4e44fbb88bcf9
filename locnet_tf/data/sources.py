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


class Source:
    """A data SPEC resolved once for a whole command: train, recipe, calibration and evaluation share it.

    For file specs (`csv:`, `voc:`, `coco:`, `yolo:`) the `SourceData` is read
    on first use and kept (`data`); builtin and `tfds:` specs keep only the
    spec, the TFDS folder and the options (their builders are read as needed).
    `pipeline.examples(source, split)`, `pipeline.cached_examples` and
    `pipeline.make_dataset` take a `Source` wherever they take a spec (class
    names other than the source's, a model's at evaluation, read it anew with
    them); build one with `resolve` or `for_config`.
    """

    def __init__(self, spec, data_dir=None, class_names=None, **source_kwargs):
        self.kind, _ = parse_spec(spec)  # a malformed spec fails here, before anything is read
        self.spec = spec
        self.data_dir = data_dir
        self.class_names = tuple(class_names) if class_names else None
        self.source_kwargs = dict(source_kwargs)
        self._data = None

    @property
    def is_file(self):
        return self.kind in READERS

    @property
    def data(self):
        """The `SourceData` of a file spec, read on first use (None for builtin and `tfds:` specs)."""
        if self.is_file and self._data is None:
            self._data = load_source(self.spec, class_names=self.class_names, **self.source_kwargs)
        return self._data

    def key(self):
        return (self.spec, self.data_dir, self.class_names, repr(sorted(self.source_kwargs.items())))

    def matches(self, spec, data_dir=None, class_names=None, **source_kwargs):
        """Whether this source is what `spec` with these options resolves to (then it can stand in for it)."""
        return self.key() == Source(spec, data_dir, class_names, **source_kwargs).key()

    def __repr__(self):
        return f"Source({self.spec!r})"


def resolve(spec, data_dir=None, class_names=None, **source_kwargs):
    """`spec` with its options as one `Source` (a `Source` given is returned as it is)."""
    if isinstance(spec, Source):
        return spec
    return Source(spec, data_dir, class_names, **source_kwargs)


def for_config(config, source=None):
    """`source` if it is what `config`'s data options resolve to, else a new `Source` for them."""
    options = dict(data_dir=config.data_dir, class_names=config.class_names, **config.source_kwargs())
    if source is not None and source.matches(config.data, **options):
        return source
    return Source(config.data, **options)
