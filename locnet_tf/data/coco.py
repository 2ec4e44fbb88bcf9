"""`coco:PATH.json` — a COCO "instances" JSON (`images`, `annotations`, `categories`).

Each image's `file_name` is looked up, first match wins, relative to the JSON's
folder, its `images/` subfolder, the JSON's parent folder, then that folder's
`images/` (so both `x/instances.json + x/images/` and the official
`annotations/instances_val2017.json + val2017/`, via `file_name` relative to
the parent, resolve). The image size comes from the image's `width`/`height`
(the file must still exist) or, when absent, from the header.

Boxes are `bbox = [x, y, width, height]` in pixels. Crowd annotations
(`iscrowd = 1`) are objects like the others. An image with no annotation is a
background image. COCO files usually come one per split; splitting that way is
up to the user (load each file), and the hash split applies within a file.

Class names, unless given, are the category names in category-id order.
"""

import json
import pathlib

from locnet_tf.data import source_utils as su
from locnet_tf.data.records import DataError


def _field(item, key, origin, kind):
    if not isinstance(item, dict) or key not in item:
        raise DataError(f"{origin}: missing {key!r}")
    value = item[key]
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise DataError(f"{origin}: {key!r} must be a number, got {value!r}")
    if kind == "str" and not isinstance(value, str):
        raise DataError(f"{origin}: {key!r} must be a string, got {value!r}")
    return value


def read_coco(path, *, class_names=None, class_map=None, unknown="error", skip_bad=False, **options):
    """Reads a `coco:PATH.json` source.

    Args:
        path: the COCO JSON file.
        class_names: sequence of str, or None to use the categories.
        class_map: dict name -> name or None (ignore those objects).
        unknown: "error" or "ignore_object", for names not in `class_names`.
        skip_bad: bool. Skip bad entries instead of raising.
        **options: passed to `source_utils.build_source`.

    Returns:
        SourceData.
    """
    json_path = pathlib.Path(path)
    name = json_path.name
    if not json_path.is_file():
        raise DataError(f"coco: {json_path} not found")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{name}: malformed JSON: {error}") from error
    for key in ("images", "annotations", "categories"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise DataError(f"{name}: a COCO instances file needs a {key!r} list")

    categories = {}
    for index, category in enumerate(data["categories"]):
        origin = f"{name} categories[{index}]"
        categories[_field(category, "id", origin, "number")] = _field(category, "name", origin, "str")
    category_names = [categories[key] for key in sorted(categories)]

    root = json_path.parent
    folders = [root, root / "images", root.parent, root.parent / "images"]
    problems = su.Problems(skip_bad)
    entries = {}
    for index, image in enumerate(data["images"]):
        origin = f"{name} images[{index}]"
        with problems.entry(origin):
            image_id = _field(image, "id", origin, "number")
            file_name = _field(image, "file_name", origin, "str")
            origin = f"{name} image {file_name}"
            size = None
            if "width" in image and "height" in image:
                width = _field(image, "width", origin, "number")
                height = _field(image, "height", origin, "number")
                size = (int(height), int(width)) if width > 0 and height > 0 else None
            entries[image_id] = su.ImageEntry(
                path=su.find_file(file_name, folders),
                origin=origin,
                size=size,
                missing=f"{file_name!r} looked for in " + ", ".join(str(f) for f in folders),
            )

    for index, annotation in enumerate(data["annotations"]):
        origin = f"{name} annotations[{index}]"

        def taint(message, annotation=annotation):
            entry = entries.get(annotation.get("image_id")) if isinstance(annotation, dict) else None
            if entry is not None:
                entry.bad = entry.bad or message

        with problems.entry(origin, on_skip=taint):
            image_id = _field(annotation, "image_id", origin, "number")
            category_id = _field(annotation, "category_id", origin, "number")
            bbox = _field(annotation, "bbox", origin, "list")
            if image_id not in entries:
                raise DataError(f"{origin}: image_id {image_id} is not in 'images'")
            if category_id not in categories:
                raise DataError(f"{origin}: category_id {category_id} is not in 'categories'")
            if (
                not isinstance(bbox, list)
                or len(bbox) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)
            ):
                raise DataError(f"{origin}: 'bbox' must be 4 numbers [x, y, width, height], got {bbox!r}")
            entry = entries[image_id]
            where = f"{origin} (image {entry.origin.split(' image ', 1)[-1]})"
            entry.objects.append(su.Annotation(categories[category_id], tuple(bbox), "coco", where))

    resolver = su.ClassResolver(category_names, class_names, class_map, unknown, sort=False)
    return su.build_source(entries.values(), resolver, problems, root=root, name=f"coco:{json_path}", **options)
