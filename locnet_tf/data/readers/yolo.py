"""`yolo:PATH` — the YOLO (Ultralytics) layout.

`PATH` is a `data.yaml` file, or a folder holding one, or a folder with
`images/` and `labels/`:

- With a `data.yaml`: the root is its `path:` (relative to the YAML's folder;
  the YAML's folder when absent). `train:`, `val:` and `test:` (each a folder
  of images, a `.txt` list of image paths, or a list of those, relative to the
  root) give the splits "train", "validation" and "test". Class names are
  `names:` (a list, or a mapping id -> name). Splits that name the same
  images (`val:` the same folder as `train:`, common in quick starts) are
  accepted as in Ultralytics, each image in both, with a warning that the
  later split's figures will be optimistic; an image named twice within one
  split is refused.
- Without one: images are all files under `PATH/images/` (subfolders that
  are symbolic links followed, each real folder once:
  `files.list_images`). When it has
  `train/`, `val/` (or `valid/`) and `test/` subfolders they are the splits;
  otherwise the hash split applies. Class names come from `classes.txt`
  (in `PATH/` or `PATH/labels/`, one per line) or are the ids as strings
  ("0", "1"...; rename them with `class_map`).

An image's label file is its path with the last `images` folder replaced by
`labels` and the suffix by `.txt`. Each line is `class cx cy w h`, relative to
the image. An empty label file is a background image; so is a missing one, as
in Ultralytics, with a warning that counts them; when no image has a label
file (a misspelt or empty labels folder) the source is refused. Polygon
(segmentation) lines are not supported and are reported as malformed. Files
named like images of a format that is not read (`.webp`, `.tif`...) are bad
data (refused, or skipped and listed with `skip_bad`), never left out unseen.

`data.yaml` is read with PyYAML (`yaml.safe_load`).
"""

import os
import pathlib

from locnet_tf.data.readers import entries as su
from locnet_tf.data.readers import classes as classes_lib
from locnet_tf.data.readers import files as files_lib
from locnet_tf.core.errors import DataError

_YAML_SPLITS = {"train": "train", "val": "validation", "test": "test"}
_FOLDER_SPLITS = {"train": "train", "val": "validation", "valid": "validation", "test": "test"}


def read_yaml(path):
    """Reads a `data.yaml` into a dict (PyYAML's `safe_load`).

    Raises:
        DataError: naming the file for malformed YAML or a top level that is not a mapping.
    """
    import yaml  # the `train` extra installs PyYAML; imported here, as only YOLO sources need it

    name = pathlib.Path(path).name
    text = files_lib.read_text(path, name)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise DataError(f"{name}: malformed YAML: {error}") from error
    if not isinstance(data, dict):
        raise DataError(f"{name}: expected a mapping at the top level")
    return data


def label_path(image):
    """The label file of an image: last `images` folder -> `labels`, suffix `.txt`."""
    parts = list(pathlib.Path(image).parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return pathlib.Path(*parts).with_suffix(".txt")
    return pathlib.Path(image).with_suffix(".txt")


def _names_list(names, origin):
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise DataError(f"{origin}: 'names' keys must be class ids, got {list(names)}") from None
        if ids != list(range(len(ids))):
            raise DataError(f"{origin}: 'names' ids must be 0..{len(ids) - 1}, got {ids}")
        return [str(names.get(i, names.get(str(i)))) for i in ids]
    raise DataError(f"{origin}: 'names' must be a list or an id -> name mapping, got {names!r}")


def _images_of(item, root, origin):
    """Images named by one data.yaml split entry (folder or .txt list)."""
    target = pathlib.Path(item)
    target = target if target.is_absolute() else root / target
    if target.is_dir():
        return files_lib.list_images(target)
    if target.is_file() and target.suffix == ".txt":
        lines = [line.strip() for line in files_lib.read_text(target, f"{origin} {item}").splitlines() if line.strip()]
        return [pathlib.Path(p) if pathlib.Path(p).is_absolute() else root / p for p in lines]
    raise DataError(f"{origin}: split entry {item!r} is neither a folder nor a .txt list ({target})")


def _layout(path):
    """Returns (root, names, [(image path, split or None)], origin name)."""
    path = pathlib.Path(path)
    yaml_path = None
    if path.is_file():
        yaml_path = path
    elif path.is_dir():
        for candidate in ("data.yaml", "data.yml", "dataset.yaml"):
            if (path / candidate).is_file():
                yaml_path = path / candidate
                break
    else:
        raise DataError(f"yolo: {path} not found")

    if yaml_path is not None:
        config = read_yaml(yaml_path)
        origin = yaml_path.name
        root = yaml_path.parent / str(config.get("path") or ".")
        if "names" not in config:
            raise DataError(f"{origin}: 'names' is missing")
        names = _names_list(config["names"], origin)
        images = []
        for key, split in _YAML_SPLITS.items():
            items = config.get(key)
            for item in items if isinstance(items, list) else [items] if items else []:
                images += [(image, split) for image in _images_of(item, root, origin)]
        if not images:
            raise DataError(f"{origin}: no images found for train/val/test under {root}")
        return root, names, images

    if not (path / "images").is_dir():
        raise DataError(f"yolo: {path} has neither a data.yaml nor an images/ folder")
    if not (path / "labels").is_dir():
        raise DataError(f"yolo: {path} has images/ but no labels/ folder")
    names = None
    for candidate in (path / "classes.txt", path / "labels" / "classes.txt"):
        if candidate.is_file():
            names = [line.strip() for line in files_lib.read_text(candidate).splitlines() if line.strip()]
            break
    subfolders = {p.name: p for p in (path / "images").iterdir() if p.is_dir()}
    images = []
    if subfolders and set(subfolders) <= set(_FOLDER_SPLITS):
        for folder_name, folder in sorted(subfolders.items()):
            images += [(image, _FOLDER_SPLITS[folder_name]) for image in files_lib.list_images(folder)]
    else:
        images = [(image, None) for image in files_lib.list_images(path / "images")]
    if not images:
        raise DataError(f"yolo: no images under {path / 'images'}")
    return path, names, images


def _parse_label_file(label_file, origin, names):
    objects = []
    for number, line in enumerate(files_lib.read_text(label_file, origin).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{origin}:{number}"
        if len(fields) != 5:
            raise DataError(
                f"{where}: malformed line {line.strip()!r}: expected 'class cx cy w h' "
                f"(5 numbers), got {len(fields)} fields (polygons are not supported)"
            )
        try:
            class_id = int(fields[0])
            box = tuple(float(v) for v in fields[1:])
        except ValueError:
            raise DataError(f"{where}: malformed line {line.strip()!r}: not numbers") from None
        if names is not None and not 0 <= class_id < len(names):
            raise DataError(f"{where}: class id {class_id} is out of range for {len(names)} names")
        if class_id < 0:
            raise DataError(f"{where}: negative class id {class_id}")
        label = names[class_id] if names is not None else str(class_id)
        objects.append(su.Annotation(label, box, "yolo", where))
    return objects


def read_yolo(path, *, class_names=None, class_map=None, unknown="error", skip_bad=False, **options):
    """Reads a `yolo:PATH` source.

    Args:
        path: a data.yaml, or a folder (see the module docstring).
        class_names: sequence of str, or None to use the data's names.
        class_map: dict name -> name or None (ignore those objects).
        unknown: "error" or "ignore_object", for names not in `class_names`.
        skip_bad: bool. Skip bad entries instead of raising.
        **options: passed to `entries.build_source`.

    Returns:
        SourceData.
    """
    root, names, images = _layout(path)
    problems = su.Problems(skip_bad)
    entries, labels, unlabelled = [], [], []
    split_of, shared, real_folders = {}, {}, {}  # image -> its first split; (split, first split) -> count
    for image, split in images:
        label_file = label_path(image)
        origin = files_lib.relative_name(label_file, root)
        # One image in two splits (val: naming train's folder) is allowed, as in Ultralytics; one
        # image twice in a split is not (build_source refuses it). Keyed by the real folder, resolved
        # once per folder.
        if image.parent not in real_folders:
            real_folders[image.parent] = os.path.realpath(image.parent)
        key = (real_folders[image.parent], image.name)
        first_split = split_of.setdefault(key, split)
        also_in = first_split if split is not None and first_split != split else ""
        if also_in:
            shared[(split, first_split)] = shared.get((split, first_split), 0) + 1
        elif not label_file.is_file():
            unlabelled.append(origin)
        with problems.entry(origin):
            objects = _parse_label_file(label_file, origin, names) if label_file.is_file() else []
            entries.append(su.ImageEntry(path=image, origin=origin, objects=objects, split=split, also_in=also_in))
            labels += [obj.label for obj in objects]
    notes = []
    if shared:
        pairs = ", ".join(
            f"{count} {split} {'image is' if count == 1 else 'images are'} also in {first}"
            for (split, first), count in shared.items()
        )
        scored = " and ".join(dict.fromkeys(split for split, _ in shared))
        notes.append(
            f"yolo:{path}: {pairs} (listed for both): accepted, as Ultralytics does, but the {scored} figures "
            "will be optimistic: the model is scored on images it trained on"
        )
    distinct = len(images) - sum(shared.values())  # an image listed for two splits counts once
    if unlabelled and len(unlabelled) == distinct:
        # A misspelt or empty labels folder would make every image background.
        raise DataError(
            f"yolo:{path}: none of the {distinct} images has a label file (looked for "
            f"{unlabelled[0]}, ...); is the labels folder misspelt or empty? An image's label file is its path "
            "with the last 'images' folder replaced by 'labels' and the suffix by '.txt'"
        )
    if unlabelled:
        notes.append(
            f"yolo:{path}: {len(unlabelled)} of {distinct} images have no label file and are taken as "
            f"background (first: {', '.join(unlabelled[:3])})"
        )
    data_labels = names if names is not None else sorted(set(labels), key=int)
    resolver = classes_lib.ClassResolver(data_labels, class_names, class_map, unknown, sort=False)
    return su.build_source(entries, resolver, problems, root=root, name=f"yolo:{path}", notes=notes, **options)
