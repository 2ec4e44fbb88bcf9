"""The tf.data pipeline: from a SPEC to batches of `(image, target)`.

Every step is a pure `dict -> dict` function on the example dicts of
`locnet_tf.core.records` (`"image"` uint8 `[H, W, 3]`, `"box"` float32 `[4]` in
the target format, `"class_id"` int32, `"present"` bool, and `"path"` for
file-backed examples until they are decoded). Each works eagerly and inside
`tf.data.Dataset.map`::

    examples(spec, split)       -> (dataset of example dicts, class names)
    decode(example)             path -> image; bad files fail naming the file  (locnet_tf.data.decode)
    resize(example, size, method="stretch" | "letterbox")
    augment(example, seed, config=AugmentConfig())      (locnet_tf.data.augment)
    crop_around_object(example, seed, size)             (locnet_tf.data.augment)
    to_inputs(example, layout)  -> (float32 image 0..255, float32 target [5 + K])

and `make_dataset` chains them: examples -> decode (parallel) -> resize ->
cache -> shuffle -> augment (training) -> crop (optional) -> encode -> batch -> float32 -> prefetch. The
dataset it returns carries the class names in `dataset.class_names` (as
`keras.utils.image_dataset_from_directory` does); that attribute is lost if you
`.map` the dataset further, so read it first.

Bad data is never skipped here (no `ignore_errors()`): a missing, empty,
truncated, oversized or non-image file stops the pipeline with an error naming
it (`locnet_tf.data.decode`). (The source readers check every file before a pipeline is built,
`locnet_tf.core.image_files.inspect`, so these checks catch only files changed since.)
"""

import functools
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from locnet_tf.model import boxes as box_lib
from locnet_tf.core import geometry, moved
from locnet_tf.data.builtin import procedural, synthetic  # noqa: F401  (they register their TFDS builders)
from locnet_tf.core.records import BOX, CLASS_ID, FILE_SIZE, IMAGE, ORIENTATION, PATH, PRESENT
from locnet_tf.core.errors import EmptySplitError
from locnet_tf.data.decode import decode
from locnet_tf.model.target import TargetLayout

# Augmentation lives in its own module; its names stay importable from here.
from locnet_tf.data.augment import AugmentConfig, _to_uint8, augment, crop_around_object  # noqa: F401

# 0.2.0 names that moved (issue 28): `except pipeline.DataError` in user code must not turn into
# an AttributeError the moment an error happens. Each warns with its new place until 0.4.0.
__getattr__ = moved.names_getattr(
    __name__,
    {
        "DataError": "locnet_tf.core.errors",
        "read_image": "locnet_tf.data.decode",
        "apply_orientation": "locnet_tf.data.decode",
    },
)


AUTOTUNE = tf.data.AUTOTUNE
KEYS = (IMAGE, BOX, CLASS_ID, PRESENT)
SPLITS = ("train", "validation", "test")
_SPLIT_ALIASES = {"val": "validation", "valid": "validation"}


def split_name(split):
    """The split's own name for an alias (`"val"`, `"valid"` -> `"validation"`); others as given."""
    return _SPLIT_ALIASES.get(split, split)


# ----------------------------------------------------------------------------
# Sources -> example dicts.


def examples(spec="synthetic", split="train", *, data_dir=None, class_names=None, **source_kwargs):
    """A source as a dataset of example dicts, and its class names.

    Args:
        spec: str or `sources.Source` (resolved once; `data_dir` and the
            source options are then its own). `"synthetic"` or `"synthetic/CONFIG"` (the built-in
            `synthetic_road` TFDS builder, e.g. `"synthetic/tiny"`),
            `"tfds:NAME[/CONFIG]"`, or a file source `"csv:PATH"`,
            `"voc:DIR"`, `"coco:PATH.json"`, `"yolo:PATH"`.
        split: str. `"train"`, `"validation"` or `"test"` (TFDS specs also take
            TFDS split expressions such as `"train[:10%]"`).
        data_dir: str. TFDS data folder for `synthetic` and `tfds:` specs
            (default: TFDS's, `~/tensorflow_datasets`).
        class_names: sequence of str. The target classes in order; None takes
            them from the source.
        **source_kwargs: passed to the source reader
            (`locnet_tf.data.sources.load_source` or
            `locnet_tf.data.readers.tfds_source.tfds_examples`), e.g. `class_map`,
            `multi_object`, `skip_bad`.

    Returns:
        (tf.data.Dataset of example dicts with decoded `"image"`, tuple of
        class names).

    Raises:
        ValueError: an unknown spec or split.
        DataError: bad data (from the readers), or an empty split.
    """
    from locnet_tf.data import sources  # the readers; imported late, they are heavy

    split = split_name(split)
    if isinstance(spec, sources.Source):  # resolved once by the command; read again only for other classes
        source = spec
        if class_names is not None and tuple(class_names) != source.class_names:
            if not (source.is_file and tuple(source.data.class_names) == tuple(class_names)):
                return examples(
                    source.spec, split, data_dir=source.data_dir, class_names=class_names, **source.source_kwargs
                )
        if source.is_file:
            return source_data_examples(source.data, split, where=source.spec)
        spec, data_dir, class_names, source_kwargs = (
            source.spec,
            source.data_dir,
            source.class_names,
            source.source_kwargs,
        )
    kind, rest = sources.parse_spec(spec)
    if kind in sources.BUILTIN_KINDS:
        return _builtin_examples(
            sources.BUILTIN_BUILDERS[kind], rest, split, data_dir=data_dir, class_names=class_names, **source_kwargs
        )
    if kind == "tfds":
        from locnet_tf.data.readers import tfds_source

        kwargs = {k: v for k, v in source_kwargs.items() if k not in _FILE_ONLY_OPTIONS or k == "multi_object"}
        return tfds_source.tfds_examples(rest, split, class_names=class_names, data_dir=data_dir, **kwargs)
    source = sources.load_source(spec, class_names=class_names, **source_kwargs)
    return source_data_examples(source, split, where=spec)


def source_data_examples(source, split, where):
    """`examples` of a `SourceData` already read (`where`: its spec, for messages)."""
    if split not in source.records:
        raise ValueError(f"Unknown split {split!r} for {where!r}; it has {sorted(source.records)}.")
    dataset = records_dataset(source.records[split], where=f"{where} ({split})")
    dataset = dataset.map(decode, num_parallel_calls=AUTOTUNE)
    return dataset, tuple(source.class_names)


def records_dataset(records, where="records"):
    """A list of `Record` as a dataset of `{"path", "box", "class_id", "present"}`.

    Plus `"orientation"` and `"file_size"` when every record knows them (the
    source readers find them as they check each file): `decode` then needs
    no Python call per image, and checks only files changed since.

    Raises:
        EmptySplitError: when `records` is empty (an empty split trains nothing
            and would otherwise fail much later with a shape error).
    """
    if not records:
        raise EmptySplitError(f"{where}: no images in this split.")
    columns = {
        # As bytes (os.fsencode): a file name that is not UTF-8 (Latin-1 on
        # Linux) reaches the file system as it is named.
        PATH: [os.fsencode(r.path) for r in records],
        BOX: np.stack([np.asarray(r.box, np.float32) for r in records]),
        CLASS_ID: np.asarray([r.class_id if r.present else 0 for r in records], np.int32),
        PRESENT: np.asarray([bool(r.present) for r in records]),
    }
    if all(r.orientation is not None and r.file_size is not None for r in records):
        columns[ORIENTATION] = np.asarray([r.orientation for r in records], np.int32)
        columns[FILE_SIZE] = np.asarray([r.file_size for r in records], np.int64)
    return tf.data.Dataset.from_tensor_slices(columns)


def tfds_other_objects(spec, split, *, image_size, resize="stretch", data_dir=None, class_names=None, **source_kwargs):
    """For a `tfds:` spec, each example's other labelled objects, in the order `examples` yields them.

    The TFDS reader picks each image's largest object inside the tf.data
    graph, so evaluation reads the split once more, for the others alone
    (`tfds_source.map_example`'s `"others"`), with the same options: the same
    examples in the same order. File sources keep theirs in `Record.others`.

    Returns:
        A list of `[(class_id, box on the model input), ...]` per example (boxes
        moved as `resize` moves them into `image_size`), or None for a spec
        that is not `tfds:` (the built-in data have one object per image).
    """
    from locnet_tf.data import sources
    from locnet_tf.data.readers import tfds_source

    kind, rest = sources.parse_spec(spec)
    if kind != "tfds":
        return None
    kwargs = {k: v for k, v in source_kwargs.items() if k not in _FILE_ONLY_OPTIONS or k == "multi_object"}
    dataset, _ = tfds_source.tfds_examples(
        rest, split_name(split), class_names=class_names, data_dir=data_dir, keep_others=True, **kwargs
    )
    dataset = dataset.map(lambda ex: (ex["others"], tf.shape(ex[IMAGE])[:2]), num_parallel_calls=AUTOTUNE)
    result = []
    for others, (height, width) in dataset.as_numpy_iterator():
        boxes = geometry.boxes_to_letterbox(others[:, 1:], height, width, image_size, resize)
        result.append([(int(c), box) for c, box in zip(others[:, 0], boxes)])
    return result


# File-source options that mean nothing for generated data (no bad entries,
# one object, fixed splits); accepted so one set of options works for any spec.
_FILE_ONLY_OPTIONS = ("skip_bad", "multi_object", "splits", "seed", "box_tolerance", "verify_images")


def _builtin_examples(
    builder_name,
    config,
    split,
    *,
    data_dir=None,
    class_names=None,
    class_map=None,
    unknown=None,
    download=True,
    **kwargs,
):
    """Examples of one of the package's own TFDS builders (`synthetic_road`, `procedural_objects`)."""
    from locnet_tf.data.readers import tfds_source

    unexpected = sorted(set(kwargs) - set(_FILE_ONLY_OPTIONS))
    if unexpected:
        raise TypeError(f"Unexpected options for the {builder_name} source: {unexpected}.")
    name = builder_name + (f"/{config}" if config else "")
    builder = tfds.builder(name, data_dir=data_dir)
    if download:
        builder.download_and_prepare()  # generated locally: nothing is downloaded
    # The same class lookup as catalog datasets, so `class_names` / `class_map`
    # may rename, reorder or subset the classes; a class left out (with
    # `unknown="ignore_object"`) becomes background.
    table, names = tfds_source.class_lookup(
        list(builder.info.features["label"].names),
        class_names,
        class_map,
        unknown or "error",
        where=name,
    )
    table = tf.constant(np.asarray(table, np.int32))

    def to_example(ex):
        class_id = tf.gather(table, tf.cast(ex["label"], tf.int32))
        present = tf.logical_and(ex["present"], class_id >= 0)
        # Background images carry a dummy bbox: zero it, as the contract says.
        box = box_lib.to_target(ex["bbox"], "tfds") * tf.cast(present, tf.float32)
        return {IMAGE: ex["image"], BOX: box, CLASS_ID: tf.maximum(class_id, 0), PRESENT: present}

    dataset = builder.as_dataset(split=split).map(to_example, num_parallel_calls=AUTOTUNE)
    return dataset, tuple(names)


# ----------------------------------------------------------------------------
# Resize.


def resize(example, image_size, method="stretch", pad_value=0):
    """Resizes `"image"` to `image_size` and moves `"box"` with it.

    Args:
        example: example dict with a decoded uint8 `"image"`.
        image_size: int or (height, width). The output size.
        method: `"stretch"` (scale each axis; relative boxes do not change) or
            `"letterbox"` (scale by the smaller ratio to keep the aspect,
            centre, pad the rest with `pad_value`; boxes are scaled by the
            resized size and shifted by the padding, exactly).
        pad_value: int. Grey level of letterbox padding.

    Returns:
        The example with a uint8 `"image"` of the requested size.
    """
    out_h, out_w = (image_size, image_size) if np.isscalar(image_size) else image_size
    if method not in ("stretch", "letterbox"):
        raise ValueError(f"resize method must be 'stretch' or 'letterbox', got {method!r}.")
    image = example[IMAGE]
    shape = tf.shape(image)
    out = dict(example)
    if method == "stretch":
        new_h, new_w = tf.constant(out_h), tf.constant(out_w)
    else:
        new_h, new_w, top, left = geometry.letterbox_geometry_tf(shape[0], shape[1], out_h, out_w)
    same = tf.logical_and(tf.equal(shape[0], new_h), tf.equal(shape[1], new_w))
    resized = tf.cond(
        same,
        lambda: tf.cast(image, tf.float32),
        # antialias: photos are often shrunk 3-4x, where plain bilinear aliases.
        lambda: tf.image.resize(image, tf.stack([new_h, new_w]), antialias=True),
    )
    resized = _to_uint8(resized)
    if method == "stretch":
        out[IMAGE] = tf.ensure_shape(resized, [out_h, out_w, 3])
        return out
    padded = tf.pad(
        resized,
        [[top, out_h - new_h - top], [left, out_w - new_w - left], [0, 0]],
        constant_values=tf.cast(pad_value, tf.uint8),
    )
    out[IMAGE] = tf.ensure_shape(padded, [out_h, out_w, 3])
    box = geometry.boxes_to_letterbox_tf(example[BOX], shape[0], shape[1], (out_h, out_w), method)
    out[BOX] = box * tf.cast(example[PRESENT], tf.float32)
    return out


_augment = augment  # make_dataset's `augment` argument shadows the function


# ----------------------------------------------------------------------------
# Encode and assemble.


def to_inputs(example, layout):
    """Example dict -> `(image float32 [H, W, 3] in 0..255, target float32 [5 + K])`."""
    image, target = _encode(example, layout)
    return _images_to_float(image, target)


def _encode(example, layout):
    # `to_inputs` with the image left uint8 (`make_dataset` casts whole batches).
    target = layout.encode_tensor(example[PRESENT], example[BOX], example[CLASS_ID])
    return example[IMAGE], tf.cast(target, tf.float32)


def _images_to_float(images, targets):
    return tf.cast(images, tf.float32), targets


def make_dataset(
    spec="synthetic",
    split="train",
    *,
    image_size=128,
    batch_size=32,
    augment=None,
    resize="stretch",
    class_names=None,
    shuffle=None,
    shuffle_buffer=2048,
    cache=True,
    seed=0,
    data_dir=None,
    drop_remainder=False,
    crop=None,
    source=None,
    **source_kwargs,
):
    """Batches of `(image, target)` for training or evaluation.

    Args:
        spec: str. A data SPEC, or a `sources.Source` (see `examples`).
        split: str. `"train"`, `"validation"` or `"test"`.
        image_size: int or (height, width). Model input size.
        batch_size: int.
        augment: None (augment only the train split), bool, or an
            `AugmentConfig`.
        resize: `"stretch"` or `"letterbox"` (see `resize`).
        class_names: sequence of str or None (the source's classes).
        shuffle: None (shuffle only the train split) or bool.
        shuffle_buffer: int. Shuffle buffer, in examples.
        cache: True (in memory), False, or a file path prefix for
            `Dataset.cache`. Caches decoded, resized uint8 images, before
            augmentation, so each epoch sees new augmentations.
        seed: int. Seeds shuffling and augmentation (reproducible runs).
        data_dir: str. TFDS data folder (`synthetic`, `tfds:` specs).
        drop_remainder: bool. Drop the last partial batch.
        crop: None, or int: after resizing to `image_size` (and augmenting),
            take a random `crop` x `crop` window holding the object
            (`crop_around_object`); new windows every epoch on the train
            split, the same ones on the others.
        source: None, or `cached_examples(spec, split, ...)` already built
            for this `image_size`: pipelines made from one source decode and
            cache its images once (progressive resizing's crop mode reads the
            same full-size images in both phases). With a source, `spec`,
            `resize`, `cache`, `class_names`, `data_dir` and `source_kwargs`
            are its own and not read here.
        **source_kwargs: passed to the source reader (see `examples`).

    Returns:
        tf.data.Dataset of `(float32 [B, H, W, 3] in 0..255, float32 [B, 5 + K])`,
        with `dataset.class_names` (tuple of str) set.
    """
    train = split_name(split) == "train"
    if crop and not (isinstance(image_size, int) and 0 < int(crop) < image_size):
        # The window is square and must fit in the (square) resized image.
        raise ValueError(f"crop={crop} needs a square image_size larger than it, got image_size={image_size}.")
    if source is None:
        source = cached_examples(
            spec,
            split,
            image_size=image_size,
            resize=resize,
            cache=cache,
            class_names=class_names,
            data_dir=data_dir,
            **source_kwargs,
        )
    dataset, names = source
    layout = TargetLayout(names)
    if train if shuffle is None else shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if augment is None:
        augment = train
    if augment:
        config = augment if isinstance(augment, AugmentConfig) else AugmentConfig()
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip(dataset, seeds).map(
            lambda ex, s: _augment(ex, s, config), num_parallel_calls=AUTOTUNE
        )
    if crop:
        # A different seed stream from augmentation's, so crops and augmentations are independent.
        seeds = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=train).batch(2)
        dataset = tf.data.Dataset.zip(dataset, seeds).map(
            lambda ex, s: crop_around_object(ex, s, int(crop)), num_parallel_calls=AUTOTUNE
        )
    # Images stay uint8 until they are batched, then become float32 a batch at a
    # time: cast one by one, each image would move 4x the bytes through the
    # encode map and the batch copy (about 5x the pipeline's work; figures in
    # docs/benchmarks.md, `benchmarks/data_pipeline.py`).
    dataset = dataset.map(functools.partial(_encode, layout=layout), num_parallel_calls=AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)
    dataset = dataset.map(_images_to_float, num_parallel_calls=AUTOTUNE)
    dataset = dataset.prefetch(AUTOTUNE)
    dataset.class_names = tuple(names)
    return dataset


def cached_examples(
    spec, split, *, image_size, resize="stretch", cache=True, class_names=None, data_dir=None, **source_kwargs
):
    """`(dataset, class names)`: the examples of `split` decoded, resized to `image_size` and cached.

    The part of `make_dataset` before shuffling; give it to several
    `make_dataset(source=...)` calls and the images are decoded once (an
    in-memory cache is shared by every pipeline built on it).
    """
    dataset, names = examples(spec, split, data_dir=data_dir, class_names=class_names, **source_kwargs)
    resize_fn = functools.partial(_resize_and_select, image_size=image_size, method=resize)
    dataset = dataset.map(resize_fn, num_parallel_calls=AUTOTUNE)
    if cache:
        dataset = dataset.cache("" if cache is True else str(cache))
    return dataset, names


def _resize_and_select(example, image_size, method):
    # Only the four example keys go on: `path` strings would bloat the cache.
    example = resize(example, image_size, method)
    return {k: example[k] for k in KEYS}
