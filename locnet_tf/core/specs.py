"""A data SPEC string: which kind of source it names, and where.

==================  ==========================================
SPEC                kind
==================  ==========================================
``csv:PATH``        a file kind (`FILE_KINDS`): read by `locnet_tf.data.sources`
``voc:DIR``         a file kind
``coco:PATH.json``  a file kind
``yolo:PATH``       a file kind
``tfds:NAME``       a TFDS catalog dataset
``synthetic[/C]``   a built-in kind (`BUILTIN_KINDS`): the package's own TFDS builder
``procedural[/C]``  a built-in kind: the pretraining pictures
==================  ==========================================

Plain strings only (no reader, no TensorFlow), so the config checks a spec
and the output rules find a spec's files without loading any data code.
"""

import difflib

__all__ = [
    "BUILTIN_BUILDERS",
    "BUILTIN_KINDS",
    "FILE_KINDS",
    "TFDS_KIND",
    "is_synthetic",
    "parse_class_map",
    "parse_spec",
]

# The file formats, one reader each (`locnet_tf.data.sources.READERS`, in this order).
FILE_KINDS = ("csv", "voc", "coco", "yolo")
TFDS_KIND = "tfds"
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
    if not sep or kind not in FILE_KINDS + (TFDS_KIND,) or not rest:
        known = FILE_KINDS + (TFDS_KIND,) + BUILTIN_KINDS
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


def is_synthetic(spec):
    """Whether `spec` names the built-in synthetic_road data (`synthetic` or `synthetic/CONFIG`)."""
    return str(spec) == "synthetic" or str(spec).startswith("synthetic/")


def parse_class_map(text):
    """`"person=pedestrian,motorbike=motorcycle,cat="` -> dict (empty value -> None)."""
    mapping = {}
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        source, sep, target = item.partition("=")
        if not sep or not source.strip():
            raise ValueError(f"class map entries look like 'old=new' (or 'old=' to ignore), got {item!r}")
        mapping[source.strip()] = target.strip() or None
    return mapping
