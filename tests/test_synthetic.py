"""The synthetic_road TFDS builder: registration, determinism, balance, tight boxes, splits."""

import hashlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from locnet_tf.data.builtin import synthetic  # importing it registers the builder

TINY = "synthetic_road/tiny"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    tfds.builder(TINY, data_dir=str(data_dir)).download_and_prepare()
    return data_dir


def _load(data_dir, split):
    return list(tfds.as_numpy(tfds.load(TINY, split=split, data_dir=str(data_dir))))


def test_registered_with_tfds():
    assert "synthetic_road" in tfds.list_builders(with_community_datasets=False)
    configs = {c.name: c for c in synthetic.SyntheticRoad.BUILDER_CONFIGS}
    assert configs["default"].image_size == 128 and configs["default"].num_train >= 5000
    assert configs["tiny"].image_size == 64
    # "large" only adds training images: its validation and test splits are
    # default's, image for image, so figures on either compare directly.
    same = ("image_size", "num_validation", "num_test", "seed")
    assert [getattr(configs["large"], k) for k in same] == [getattr(configs["default"], k) for k in same]
    assert configs["large"].num_train > configs["default"].num_train


def test_tfds_load_gives_the_documented_features(tiny_dir):
    ds = tfds.load(TINY, split="train", data_dir=str(tiny_dir))
    ex = next(iter(tfds.as_numpy(ds)))
    assert ex["image"].shape == (64, 64, 3) and ex["image"].dtype == np.uint8
    assert ex["bbox"].shape == (4,)
    assert ex["label"] in (0, 1, 2)
    assert isinstance(ex["present"], (bool, np.bool_))
    info = tfds.builder(TINY, data_dir=str(tiny_dir)).info
    assert info.features["label"].names == ["pedestrian", "car", "motorcycle"]


def test_splits_have_configured_sizes_and_differ(tiny_dir):
    config = tfds.builder(TINY, data_dir=str(tiny_dir)).builder_config
    digests = {}
    for split, n in (("train", config.num_train), ("validation", config.num_validation), ("test", config.num_test)):
        rows = _load(tiny_dir, split)
        assert len(rows) == n
        digests[split] = {hashlib.md5(r["image"].tobytes()).hexdigest() for r in rows}
        assert len(digests[split]) == n  # no duplicated image within a split
    assert not digests["train"] & digests["test"]
    assert not digests["train"] & digests["validation"]


def test_class_balance_and_background_share(tiny_dir):
    rows = _load(tiny_dir, "train")
    present = np.array([r["present"] for r in rows])
    labels = np.array([r["label"] for r in rows])
    n = len(rows)
    assert (~present).sum() == round(0.25 * n)
    counts = np.bincount(labels[present], minlength=3)
    assert counts.max() - counts.min() <= 1, counts
    # Background rows carry the documented dummy box.
    for r in rows:
        if not r["present"]:
            np.testing.assert_allclose(r["bbox"], [0, 0, 1, 1])
    # And the kinds helper is exact at other sizes too.
    kinds = synthetic.split_kinds(1000, seed=3)
    assert (kinds == -1).sum() == 250
    assert sorted(np.bincount(kinds[kinds >= 0])) == [250, 250, 250]


def test_build_is_deterministic(tmp_path, tiny_dir):
    tfds.builder(TINY, data_dir=str(tmp_path)).download_and_prepare()
    for split in ("train", "test"):
        a, b = _load(tiny_dir, split), _load(tmp_path, split)
        assert [x["image"].tobytes() for x in a] == [x["image"].tobytes() for x in b]
        np.testing.assert_array_equal([x["bbox"] for x in a], [x["bbox"] for x in b])
    one = synthetic.render_example((5, 1, 7), 64, 1)
    two = synthetic.render_example((5, 1, 7), 64, 1)
    other = synthetic.render_example((6, 1, 7), 64, 1)
    assert one["image"].tobytes() == two["image"].tobytes()
    assert one["image"].tobytes() != other["image"].tobytes()


def test_records_match_the_drawing(tiny_dir):
    # The builder writes, for example i of a split, exactly render_example's box.
    config = tfds.builder(TINY, data_dir=str(tiny_dir)).builder_config
    kinds = synthetic.split_kinds(config.num_test, (config.seed, 3))
    expected = set()
    for i, kind in enumerate(kinds):
        ex = synthetic.render_example((config.seed, 3, i), config.image_size, None if kind < 0 else int(kind))
        expected.add(
            (
                bool(ex["present"]),
                max(int(kind), 0),
                tuple(np.round(np.asarray(ex["bbox"], np.float32) * config.image_size).astype(int).tolist()),
            )
        )
    got = {
        (
            bool(r["present"]),
            int(r["label"]),
            tuple(np.round(np.asarray(r["bbox"], np.float32) * config.image_size).astype(int).tolist()),
        )
        for r in _load(tiny_dir, "test")
    }
    assert got == expected


@pytest.mark.parametrize("size", [64, 128])
def test_boxes_are_tight_around_visible_object_pixels(size):
    spans = []
    for i in range(60):
        class_id = i % 3
        ex = synthetic.render_example((11, size, i), size, class_id)
        mask = ex["mask"]
        assert ex["present"] and mask.sum() >= 12
        y1, x1, y2, x2 = np.round(np.asarray(ex["bbox"]) * size).astype(int)
        inside = np.zeros_like(mask)
        inside[y1:y2, x1:x2] = True
        assert not (mask & ~inside).any(), "object pixels outside the box"
        # Tight: every edge row / column of the box holds object pixels.
        assert mask[y1, x1:x2].any() and mask[y2 - 1, x1:x2].any()
        assert mask[y1:y2, x1].any() and mask[y1:y2, x2 - 1].any()
        # The object fills a real share of its box (no empty canvas margins).
        assert mask[y1:y2, x1:x2].mean() > 0.15
        spans.append(max(y2 - y1, x2 - x1) / size)
    # Sizes vary from small to nearly filling the frame.
    assert min(spans) < 0.25 and max(spans) > 0.8


def test_objects_stand_out_from_their_surroundings():
    # The mask marks pixels the object really painted: their mean colour
    # differs from a 2-pixel ring of non-object pixels around the box.
    contrasts = []
    for i in range(30):
        ex = synthetic.render_example((21, i), 64, i % 3)
        image, mask = np.asarray(ex["image"], np.float32), ex["mask"]
        y1, x1, y2, x2 = np.round(np.asarray(ex["bbox"]) * 64).astype(int)
        near = np.zeros_like(mask)
        near[max(y1 - 2, 0) : min(y2 + 2, 64), max(x1 - 2, 0) : min(x2 + 2, 64)] = True
        ring = near & ~mask
        if ring.sum() >= 10:
            contrasts.append(np.abs(image[mask].mean(0) - image[ring].mean(0)).sum())
    assert len(contrasts) >= 20
    assert np.mean(contrasts) > 30


def test_background_images_have_no_mask():
    ex = synthetic.render_example((1, 2, 3), 64, None)
    assert not ex["present"] and not ex["mask"].any()
    assert ex["bbox"] == (0.0, 0.0, 1.0, 1.0)
