"""`voc:DIR` — Pascal VOC XML annotations.

The XML files are `DIR/Annotations/*.xml` when that folder exists, else
`DIR/*.xml`. Each file's image (`<filename>`, or the XML's stem plus `.jpg`
when absent) is looked up, first match wins, in `DIR/JPEGImages/`, beside the
XML, then in `DIR/`, `DIR/images/`. The image size comes from `<size>` (the
file must still exist; it is decoded only with `verify_images=True`); when
`<size>` is missing or zero it is read from the image header.

Boxes are `<bndbox>` `xmin ymin xmax ymax` in VOC's 1-based pixels, converted
like TFDS's `voc` builder (subtract 1, then divide by the size). A file with no
`<object>` is a background image.

Splits: when `DIR/ImageSets/Main/` has `train.txt`, `val.txt` or `test.txt`
(one image id per line) they are used and annotations listed in none of them
are left out (counted in a log message); otherwise the hash split applies.

Class names, unless given, are the object names found, sorted.
"""

import logging
import pathlib
import xml.etree.ElementTree as ET

from locnet_tf.data.readers import entries as su
from locnet_tf.data.readers import classes as classes_lib
from locnet_tf.data.readers import files as files_lib
from locnet_tf.core.errors import DataError

logger = logging.getLogger("locnet_tf.data")
_SPLIT_FILES = {"train": "train.txt", "validation": "val.txt", "test": "test.txt"}


def _text(node, tag, origin, number=False):
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DataError(f"{origin}: <{tag}> is missing")
    text = child.text.strip()
    if not number:
        return text
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{origin}: <{tag}> is not a number: {text!r}") from None


def _split_lists(root):
    folder = root / "ImageSets" / "Main"
    lists = {}
    for split, filename in _SPLIT_FILES.items():
        if (folder / filename).is_file():
            for line in files_lib.read_text(folder / filename).split():
                lists[line.strip()] = split
    return lists


def parse_voc_file(xml_path, origin, image_folders):
    """Parses one VOC XML file into an `ImageEntry` (splits not set).

    Raises:
        DataError: malformed XML, missing fields, non-numeric values.
    """
    try:
        tree = ET.parse(xml_path)
    except (ET.ParseError, OSError) as error:
        raise DataError(f"{origin}: malformed XML: {error}") from error
    node = tree.getroot()
    filename_node = node.find("filename")
    filename = (
        filename_node.text.strip() if filename_node is not None and filename_node.text else xml_path.stem + ".jpg"
    )
    size = None
    size_node = node.find("size")
    if size_node is not None:
        width = _text(size_node, "width", f"{origin} <size>", number=True)
        height = _text(size_node, "height", f"{origin} <size>", number=True)
        if width > 0 and height > 0:
            size = (int(height), int(width))
    image = files_lib.find_file(filename, image_folders)
    entry = su.ImageEntry(
        path=image,
        origin=origin,
        size=size,
        missing=f"{filename!r} looked for in " + ", ".join(str(f) for f in image_folders),
    )
    for index, obj in enumerate(node.findall("object"), start=1):
        where = f"{origin} object {index}"
        label = _text(obj, "name", where)
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise DataError(f"{where}: <bndbox> is missing")
        corners = [_text(bndbox, tag, f"{where} <bndbox>", number=True) for tag in ("xmin", "ymin", "xmax", "ymax")]
        box = tuple(c - 1.0 for c in corners)  # VOC pixels are 1-based
        entry.objects.append(su.Annotation(label, box, "xyxy", where))
    return entry


def read_voc(path, *, class_names=None, class_map=None, unknown="error", skip_bad=False, **options):
    """Reads a `voc:DIR` source.

    Args:
        path: the VOC folder (see the module docstring).
        class_names: sequence of str, or None to use the sorted object names.
        class_map: dict name -> name or None (ignore those objects).
        unknown: "error" or "ignore_object", for names not in `class_names`.
        skip_bad: bool. Skip bad files instead of raising.
        **options: passed to `entries.build_source`.

    Returns:
        SourceData.
    """
    root = pathlib.Path(path)
    if not root.is_dir():
        raise DataError(f"voc: {root} is not a folder")
    xml_folder = root / "Annotations" if (root / "Annotations").is_dir() else root
    xml_files = sorted(xml_folder.glob("*.xml"))
    if not xml_files:
        raise DataError(f"voc: no .xml files in {xml_folder}")
    split_of = _split_lists(root)
    problems = su.Problems(skip_bad)
    entries, labels, unlisted = [], [], 0
    for xml_path in xml_files:
        if split_of and xml_path.stem not in split_of:
            unlisted += 1
            continue
        origin = files_lib.relative_name(xml_path, root)
        folders = [root / "JPEGImages", xml_path.parent, root, root / "images"]
        with problems.entry(origin):
            entry = parse_voc_file(xml_path, origin, folders)
            entry.split = split_of.get(xml_path.stem)
            entries.append(entry)
            labels += [obj.label for obj in entry.objects]
    if unlisted:
        logger.warning(
            "voc:%s: %d annotation files are in none of ImageSets/Main/{train,val,test}.txt and were left out",
            root,
            unlisted,
        )
    resolver = classes_lib.ClassResolver(labels, class_names, class_map, unknown, sort=True)
    return su.build_source(entries, resolver, problems, root=root, name=f"voc:{root}", **options)
