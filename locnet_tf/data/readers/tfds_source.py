"""`tfds:NAME[/CONFIG]` — TensorFlow Datasets catalog datasets with boxes.

`tfds_examples` loads a catalog dataset and maps each example, inside the
graph, to the pipeline's example dict

    {"image": uint8[H, W, 3], "box": float32[4] (target format),
     "class_id": int32, "present": bool}

Three layouts are understood, covering e.g. `voc/2007`, `coco/2017`,
`caltech_birds2011` and `stanford_dogs`:

- `objects/bbox` with `objects/label` (VOC, COCO): one label per object;
- `objects/bbox` with a top-level `label` (Stanford Dogs): every box gets
  the image's label;
- a top-level `bbox` with `label` (Caltech-UCSD Birds): one object.

Classes follow the same rules as the file sources (`readers.entries`): the
ClassLabel names go through `class_map`, the class list is `class_names` or
the mapped names, and labels outside it are an error (raised at once, listing
them, since the catalog's label set is known before reading any data) unless
`unknown="ignore_object"`, which drops those objects (an image left without
objects is background).

TFDS boxes are relative `[ymin, xmin, ymax, xmax]`; corners are put in order
and clipped to the image, and boxes with no area are ignored (catalog data
cannot be fixed by the user). Then `multi_object`: "largest" keeps the biggest
box, "drop" filters out images with several objects, "fail" stops the input
pipeline with an error naming the image file.
"""

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from locnet_tf.model import boxes as box_lib
from locnet_tf.data.readers import entries as su
from locnet_tf.data.readers import classes as classes_lib
from locnet_tf.core.errors import DataError, EmptySplitError
from locnet_tf.core.records import BOX, CLASS_ID, IMAGE, PRESENT


def _layout(features, name):
    """Returns (box key path, label key path, label feature)."""
    if "objects" in features and "bbox" in features["objects"]:
        objects = features["objects"]
        if "label" in objects:
            return ("objects", "bbox"), ("objects", "label"), objects["label"]
        if "label" in features:
            return ("objects", "bbox"), ("label",), features["label"]
    elif "bbox" in features and "label" in features:
        return ("bbox",), ("label",), features["label"]
    raise DataError(
        f"tfds:{name} has no bounding boxes with class labels "
        f"(features: {sorted(features.keys())}); it cannot be used for localization"
    )


def _get(example, keys):
    for key in keys:
        example = example[key]
    return example


def class_lookup(source_names, class_names=None, class_map=None, unknown="error", where="tfds"):
    """The table from the dataset's label ids to class ids (-1: ignore the object).

    Args:
        source_names: the dataset's label names, by id.
        class_names: target classes, or None for the mapped source names.
        class_map: dict name -> name or None (ignore).
        unknown: "error" or "ignore_object".
        where: str. Names the dataset in errors.

    Returns:
        (int32 numpy array of len(source_names), tuple of class names).

    Raises:
        DataError: labels outside `class_names` with `unknown="error"`.
    """
    resolver = classes_lib.ClassResolver(source_names, class_names, class_map, unknown)
    table = np.full(len(source_names), -1, np.int32)
    unknown_labels = []
    for i, label in enumerate(source_names):
        try:
            class_id = resolver.resolve(label, where)
        except DataError:
            unknown_labels.append(label)
            continue
        table[i] = -1 if class_id is None else class_id
    if unknown_labels:
        raise DataError(
            f"{where}: labels {unknown_labels} are not in the classes {list(resolver.class_names)}. "
            "Map them with `class_map` (to None to ignore them) or pass unknown='ignore_object'."
        )
    return table, resolver.class_names


def map_example(example, *, box_keys, label_keys, table, multi_object="largest", keep_others=False):
    """Maps one TFDS example to the pipeline's example dict (graph-friendly).

    Args:
        example: a TFDS example dict.
        box_keys: key path to the boxes (`(N, 4)` or `(4,)`, relative yxyx).
        label_keys: key path to the labels (`(N,)` or scalar).
        table: int32 array, dataset label id -> class id or -1 (ignore).
        multi_object: "largest", "drop" or "fail" (see the module docstring).
        keep_others: bool. Also return the other kept objects (below); off for
            training, which never reads them.

    Returns:
        dict with "image", "box", "class_id", "present", "num_objects"
        (the objects kept, for the "drop" filter), and with `keep_others`
        "others": float32 `(M, 5)`, `[class_id, b_x, b_y, b_h, b_w]` of the
        other kept objects (evaluation's `loc_accuracy_any_object`).
    """
    image = example["image"]
    if image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    bbox = tf.reshape(tf.cast(_get(example, box_keys), tf.float32), [-1, 4])
    labels = tf.reshape(tf.cast(_get(example, label_keys), tf.int32), [-1])
    labels = tf.broadcast_to(labels, tf.shape(bbox)[:1]) if len(label_keys) == 1 and len(box_keys) == 2 else labels
    class_ids = tf.gather(tf.constant(table, tf.int32), labels)
    ymin = tf.clip_by_value(tf.minimum(bbox[:, 0], bbox[:, 2]), 0.0, 1.0)
    ymax = tf.clip_by_value(tf.maximum(bbox[:, 0], bbox[:, 2]), 0.0, 1.0)
    xmin = tf.clip_by_value(tf.minimum(bbox[:, 1], bbox[:, 3]), 0.0, 1.0)
    xmax = tf.clip_by_value(tf.maximum(bbox[:, 1], bbox[:, 3]), 0.0, 1.0)
    area = (ymax - ymin) * (xmax - xmin)
    keep = tf.logical_and(class_ids >= 0, area > 0.0)
    num_objects = tf.reduce_sum(tf.cast(keep, tf.int32))
    if multi_object == "fail":
        tf.debugging.Assert(
            num_objects <= 1,
            ["image has several objects and multi_object='fail':", example.get("image/filename", ""), num_objects],
        )
    # A sentinel row makes argmax well defined when no object is kept.
    scores = tf.concat([tf.where(keep, area, -1.0), [-2.0]], axis=0)
    best = tf.argmax(scores, output_type=tf.int32)
    corners = tf.concat([tf.stack([ymin, xmin, ymax, xmax], axis=1), tf.zeros([1, 4])], axis=0)
    present = num_objects > 0
    box = box_lib.to_target(corners[best], "tfds") * tf.cast(present, tf.float32)
    class_id = tf.where(present, tf.concat([class_ids, [0]], axis=0)[best], 0)
    mapped = {IMAGE: image, BOX: box, CLASS_ID: class_id, PRESENT: present, "num_objects": num_objects}
    if keep_others:
        other = tf.logical_and(keep, tf.not_equal(tf.range(tf.shape(keep)[0]), best))
        mapped["others"] = tf.concat(
            [
                tf.cast(tf.boolean_mask(class_ids, other), tf.float32)[:, None],
                tf.reshape(box_lib.to_target(tf.boolean_mask(corners[:-1], other), "tfds"), [-1, 4]),
            ],
            axis=1,
        )
    return mapped


def tfds_examples(
    name,
    split,
    *,
    class_names=None,
    class_map=None,
    unknown="error",
    multi_object="largest",
    data_dir=None,
    download=True,
    keep_others=False,
):
    """A TFDS catalog dataset as a `tf.data.Dataset` of example dicts.

    Args:
        name: str. The catalog name, with its config: `"voc/2007"`.
        split: str. A TFDS split ("train", "validation", "test", "train[:10%]"...).
            "validation" falls back to the dataset's "val" when that is its name.
        class_names: sequence of str, or None for the dataset's label names
            (after `class_map`).
        class_map: dict name -> name or None (ignore those objects), e.g.
            `{"person": "pedestrian", "motorbike": "motorcycle"}`.
        unknown: "error" or "ignore_object", for labels outside `class_names`.
        multi_object: "largest", "drop" or "fail".
        data_dir: str. TFDS data folder (default: TFDS's).
        download: bool. Let TFDS download and prepare the dataset when needed.
        keep_others: bool. Add `map_example`'s `"others"` to each example
            (the other objects of an image whose largest became the target).

    Returns:
        (dataset of example dicts, tuple of class names).

    Raises:
        DataError: a dataset without boxes, or labels outside `class_names`.
        EmptySplitError: the dataset has no split named `split`.
    """
    su.check_options(multi_object, unknown)
    builder = tfds.builder(name, data_dir=data_dir)
    if split == "validation" and builder.info.splits and "validation" not in builder.info.splits:
        split = "val" if "val" in builder.info.splits else split
    # A plain split name the dataset lacks (many have no "test") is an empty
    # split to `train`, which then skips its test report; expressions such as
    # "train[:10%]" are left to TFDS.
    if builder.info.splits and split.isidentifier() and split not in builder.info.splits:
        raise EmptySplitError(f"tfds:{name} ({split}): no such split; it has {sorted(builder.info.splits)}.")
    features = builder.info.features
    box_keys, label_keys, label_feature = _layout(features, name)
    table, names = class_lookup(list(label_feature.names), class_names, class_map, unknown, where=f"tfds:{name}")
    if download:
        builder.download_and_prepare()
    dataset = builder.as_dataset(split=split)

    def to_example(example):
        return map_example(
            example,
            box_keys=box_keys,
            label_keys=label_keys,
            table=table,
            multi_object=multi_object,
            keep_others=keep_others,
        )

    dataset = dataset.map(to_example, num_parallel_calls=tf.data.AUTOTUNE)
    if multi_object == "drop":
        dataset = dataset.filter(lambda ex: ex["num_objects"] <= 1)
    keys = (IMAGE, BOX, CLASS_ID, PRESENT) + (("others",) if keep_others else ())
    dataset = dataset.map(lambda ex: {k: ex[k] for k in keys})
    return dataset, names
