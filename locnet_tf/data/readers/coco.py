"""`coco:PATH.json` — a COCO "instances" JSON (`images`, `annotations`, `categories`).

Each image's `file_name` is looked up, first match wins, relative to the JSON's
folder, its `images/` subfolder, the JSON's parent folder, then that folder's
`images/` (so both `x/instances.json + x/images/` and the official
`annotations/instances_val2017.json + val2017/`, via `file_name` relative to
the parent, resolve). As in a CSV, an absolute `file_name` is used as is and
one with `..` is followed where it points; such names (which leave the folders
they are looked up in) are read, and a warning counts them and names the first.
The image size comes from the image's `width`/`height` (the file must still
exist) or, when absent, from the header.

Ids must be unique: two images with one `id` (whose annotations would go to
either) or two categories with one `id` and different names (whose objects
would all take one of the names) are refused, naming both. With `skip_bad`,
both images of a duplicated id are left out and listed.

Boxes are `bbox = [x, y, width, height]` in pixels. Crowd annotations
(`iscrowd = 1`) are objects like the others. An image with no annotation is a
background image. COCO files usually come one per split; splitting that way is
up to the user (load each file), and the hash split applies within a file.

Class names, unless given, are the category names in category-id order.

Hash splits key an image by its path relative to the JSON's folder, or to that
folder's parent when it is named `annotations` (the official layout's
`annotations/` + `val2017/`), so they are the same on every machine.
"""

import json
import os
import pathlib
import re

from locnet_tf.data.readers import entries as su
from locnet_tf.data.readers import classes as classes_lib
from locnet_tf.data.readers import files as files_lib
from locnet_tf.core.errors import DataError


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
        **options: passed to `entries.build_source`.

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

    categories, category_index = {}, {}
    for index, category in enumerate(data["categories"]):
        origin = f"{name} categories[{index}]"
        category_id = _field(category, "id", origin, "number")
        category_name = _field(category, "name", origin, "str")
        if category_id in categories and categories[category_id] != category_name:
            # Every object of that id would take the last name: all cats become birds.
            raise DataError(
                f"{origin}: category id {category_id} is used twice, for {categories[category_id]!r} "
                f"(categories[{category_index[category_id]}]) and {category_name!r}: its objects would all "
                "be read as one of them; give each category its own id"
            )
        categories[category_id] = category_name
        category_index.setdefault(category_id, index)
    category_names = [categories[key] for key in sorted(categories)]

    root = json_path.parent
    folders = [root, root / "images", root.parent, root.parent / "images"]
    problems = su.Problems(skip_bad)
    entries, first_index, leaving = {}, {}, []  # id -> entry; id -> (index, file_name); names leaving the folder
    for index, image in enumerate(data["images"]):
        origin = f"{name} images[{index}]"
        with problems.entry(origin):
            image_id = _field(image, "id", origin, "number")
            file_name = _field(image, "file_name", origin, "str")
            if image_id in entries:
                # Its annotations would go to one image or the other: neither can be trusted.
                first = entries[image_id]
                first.bad = first.bad or f"{origin}: its id {image_id} is used again, by {file_name!r}"
                raise DataError(
                    f"{origin}: image id {image_id} is used twice, for {first_index[image_id][1]!r} "
                    f"(images[{first_index[image_id][0]}]) and {file_name!r}: their annotations cannot be told "
                    "apart; give each image its own id"
                )
            origin = f"{name} image {file_name}"
            if _leaves_folder(file_name):
                leaving.append(f"images[{index}] {file_name!r}")
            size = None
            if "width" in image and "height" in image:
                width = _field(image, "width", origin, "number")
                height = _field(image, "height", origin, "number")
                size = (int(height), int(width)) if width > 0 and height > 0 else None
            first_index[image_id] = (index, file_name)
            entries[image_id] = su.ImageEntry(
                path=files_lib.find_file(file_name, folders),
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

    notes = []
    if leaving:
        notes.append(
            f"coco:{json_path}: {len(leaving)} image file_name{'s' if len(leaving) > 1 else ''} leave the data "
            f"folder (an absolute path or '..'), read from where they point (first: {', '.join(leaving[:3])})"
        )
    resolver = classes_lib.ClassResolver(category_names, class_names, class_map, unknown, sort=False)
    # Splits hash paths relative to the data folder: the official layout's images sit beside annotations/.
    split_root = root.parent if root.name == "annotations" else root
    return su.build_source(
        entries.values(), resolver, problems, root=split_root, name=f"coco:{json_path}", notes=notes, **options
    )


def _leaves_folder(file_name):
    """Whether a `file_name` points outside the folders it is looked up in: absolute, or with `..`."""
    name = file_name.strip()
    return os.path.isabs(name) or ".." in re.split(r"[\\/]", name)
