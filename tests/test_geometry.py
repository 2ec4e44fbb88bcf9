"""core/geometry.py: each numpy / TensorFlow pair against each other, and the module without TensorFlow."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from locnet_tf.model import boxes as box_lib
from locnet_tf.core import errors, geometry
from locnet_tf.data import pipeline
from conftest import REPO

# Image sizes (height, width) and model inputs (out_h, out_w): odd, prime, extreme aspects,
# already the right size, and a few drawn at random.
_RNG = np.random.default_rng(28)
SIZES = [(40, 80), (480, 640), (333, 77), (64, 64), (1, 300), (299, 1), (37, 53), (1080, 1920), (7, 5)]
SIZES += [(int(h), int(w)) for h, w in _RNG.integers(1, 2000, (8, 2))]
OUTPUTS = [(32, 32), (96, 96), (128, 128), (224, 224), (33, 33), (64, 48), (31, 97)]


def random_boxes(rng, count=64):
    """Target boxes inside and outside the image, with zero and negative sizes among them."""
    centre = rng.uniform(-0.2, 1.2, (count, 2))
    size = rng.uniform(-0.1, 1.1, (count, 2))
    size[:4] = [[0.0, 0.3], [0.3, 0.0], [1.0, 1.0], [-0.2, 0.4]]
    return np.concatenate([centre, size], axis=1).astype(np.float32)


def test_letterbox_geometry_numpy_is_the_tensorflow_one():
    for height, width in SIZES:
        for out_h, out_w in OUTPUTS:
            got = geometry.letterbox_geometry(height, width, out_h, out_w)
            want = tuple(int(v) for v in geometry.letterbox_geometry_tf(height, width, out_h, out_w))
            assert got == want, f"{height}x{width} -> {out_h}x{out_w}"
            assert all(isinstance(v, int) for v in got)
            new_h, new_w, top, left = got
            # Inside the output, centred, the aspect kept to the pixel.
            assert 1 <= new_h <= out_h and 1 <= new_w <= out_w and (new_h == out_h or new_w == out_w)
            assert top == (out_h - new_h) // 2 and left == (out_w - new_w) // 2


def test_letterbox_geometry_hand_worked():
    # 40 x 80 into 32 x 32: scale 0.4 -> 16 x 32, 8 rows of padding on top.
    assert geometry.letterbox_geometry(40, 80, 32, 32) == (16, 32, 8, 0)
    # 333 x 77 into 96 x 96: scale 96/333 -> 96 x round(22.198) = 22, left (96 - 22) // 2 = 37.
    assert geometry.letterbox_geometry(333, 77, 96, 96) == (96, 22, 0, 37)
    # Height and width as tensors (the exported graph's image shape).
    got = geometry.letterbox_geometry_tf(tf.constant(333), tf.constant(77), 96, 96)
    assert [int(v) for v in got] == [96, 22, 0, 37]


@pytest.mark.parametrize("method", ["stretch", "letterbox"])
def test_box_mappings_numpy_are_the_tensorflow_ones_bit_for_bit(method):
    rng = np.random.default_rng(6)
    for height, width in SIZES:
        for out_h, out_w in OUTPUTS:
            size = out_h if out_h == out_w else (out_h, out_w)
            box = random_boxes(rng, 16)
            for numpy_fn, tf_fn in [
                (geometry.boxes_to_original, geometry.boxes_to_original_tf),
                (geometry.boxes_to_letterbox, geometry.boxes_to_letterbox_tf),
            ]:
                got = numpy_fn(box, height, width, size, method)
                want = tf_fn(box, height, width, size, method).numpy()
                assert got.dtype == np.float32 and got.shape == box.shape
                np.testing.assert_array_equal(got, want, err_msg=f"{numpy_fn.__name__} {height}x{width} -> {size}")
                # One box (shape (4,)) and tensors for the image size, as the export graphs pass them.
                one = tf_fn(box[0], tf.constant(height), tf.constant(width), size, method).numpy()
                np.testing.assert_array_equal(numpy_fn(box[0], height, width, size, method), one)


def test_boxes_to_original_undoes_boxes_to_letterbox():
    rng = np.random.default_rng(3)
    for height, width in SIZES:
        for out_h, out_w in OUTPUTS:
            box = random_boxes(rng, 16)
            moved = geometry.boxes_to_letterbox(box, height, width, (out_h, out_w), "letterbox")
            back = geometry.boxes_to_original(moved, height, width, (out_h, out_w), "letterbox")
            np.testing.assert_allclose(back, box, atol=1e-5, rtol=1e-5)
    box = random_boxes(rng, 4)
    np.testing.assert_array_equal(geometry.boxes_to_letterbox(box, 40, 80, 32, "stretch"), box)
    np.testing.assert_array_equal(geometry.boxes_to_original(box, 40, 80, 32, "stretch"), box)


def test_boxes_to_letterbox_hand_worked_and_as_the_pipeline_moves_them():
    # 40 (h) x 80 (w) into 32: 16 x 32 at row 8. b_y' = (8 + 0.5 * 16) / 32 = 0.5, b_h' = 0.5 * 16 / 32.
    box = np.array([0.25, 0.5, 0.5, 0.25], np.float32)
    np.testing.assert_array_equal(geometry.boxes_to_letterbox(box, 40, 80, 32, "letterbox"), [0.25, 0.5, 0.25, 0.25])
    example = {"image": np.zeros((40, 80, 3), np.uint8), "box": box, "present": True}
    moved = pipeline.resize(example, 32, "letterbox")["box"].numpy()
    np.testing.assert_array_equal(moved, geometry.boxes_to_letterbox(box, 40, 80, 32, "letterbox"))
    # Non-square output, odd image.
    example = {"image": np.zeros((37, 53, 3), np.uint8), "box": box, "present": True}
    moved = pipeline.resize(example, (31, 97), "letterbox")["box"].numpy()
    np.testing.assert_array_equal(moved, geometry.boxes_to_letterbox(box, 37, 53, (31, 97), "letterbox"))


def test_box_mappings_reject_an_unknown_method():
    for fn in (geometry.boxes_to_original, geometry.boxes_to_letterbox, geometry.boxes_to_original_tf):
        with pytest.raises(ValueError, match="stretch' or 'letterbox"):
            fn(np.zeros(4, np.float32), 10, 10, 8, "crop")


def test_target_to_corners_on_arrays_tensors_and_keras_tensors():
    box = np.array([[0.2, 0.3, 0.4, 0.2], [0.5, 0.5, 1.0, 1.0]], np.float32)  # b_x, b_y, b_h, b_w
    want = np.array([[0.1, 0.1, 0.3, 0.5], [0.0, 0.0, 1.0, 1.0]], np.float32)
    got = np.stack(geometry.target_to_corners(box), axis=-1)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-7)
    from_tf = np.stack([v.numpy() for v in geometry.target_to_corners(tf.constant(box))], axis=-1)
    np.testing.assert_array_equal(from_tf, got)
    import keras

    symbolic = keras.Input((4,))
    corners = keras.Model(symbolic, keras.ops.stack(geometry.target_to_corners(symbolic), axis=-1))
    np.testing.assert_array_equal(corners(box).numpy(), got)
    # A list (the validation's Python numbers) and one box of shape (4,).
    np.testing.assert_allclose(geometry.target_to_corners([0.2, 0.3, 0.4, 0.2]), want[0], atol=1e-7)


def test_corners_to_target_inverts_target_to_corners():
    rng = np.random.default_rng(9)
    box = random_boxes(rng)
    back = np.stack(geometry.corners_to_target(*geometry.target_to_corners(box)), axis=-1)
    np.testing.assert_allclose(back, box, atol=1e-6)
    tensor = tf.stack(geometry.corners_to_target(*geometry.target_to_corners(tf.constant(box))), axis=-1)
    np.testing.assert_array_equal(tensor.numpy(), back)
    assert geometry.corners_to_target(10, 20, 30, 100) == (20, 60, 80, 20)


def test_iou_numpy_is_the_keras_iou():
    rng = np.random.default_rng(11)
    a, b = random_boxes(rng, 256), random_boxes(rng, 256)
    b[:32] = a[:32]  # identical pairs
    b[32:64, :2] = a[32:64, :2] + 0.01  # near misses
    got = geometry.iou(a, b)
    assert got.dtype == np.float32 and got.shape == (256,)
    np.testing.assert_allclose(got, np.asarray(box_lib.iou(a, b)), atol=1e-6, rtol=0)
    # Hand-worked: two 0.4 x 0.4 boxes offset by 0.2 both ways share 0.04 of 0.28.
    one = geometry.iou([0.3, 0.3, 0.4, 0.4], [0.5, 0.5, 0.4, 0.4])
    assert float(one) == pytest.approx(1 / 7, abs=1e-6)
    assert float(geometry.iou([0.5, 0.5, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0])) == 0.0  # empty boxes


def test_validate_box_target_corners_are_target_to_corners():
    box = [0.2, 0.3, 0.4, 0.2]
    np.testing.assert_allclose(geometry.validate_box(box, "target"), box, atol=1e-7)
    with pytest.raises(errors.BoxError, match="outside the image"):
        geometry.validate_box([0.05, 0.3, 0.4, 0.2], "target", where="a.csv:2")


# ----------------------------------------------------------------------------
# Without TensorFlow and Keras: the geometry, and the file readers that validate boxes with it.

_BLOCKED = textwrap.dedent(
    """
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                raise ImportError(f"blocked for the test: {name}")
            return None

    sys.meta_path.insert(0, Block())
    """
)


def run_blocked(code):
    return subprocess.run(
        [sys.executable, "-c", _BLOCKED + textwrap.dedent(code)], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_geometry_works_without_tensorflow():
    result = run_blocked(
        """
        from locnet_tf.core import geometry
        assert geometry.letterbox_geometry(40, 80, 32, 32) == (16, 32, 8, 0)
        back = geometry.boxes_to_original([0.25, 0.5, 0.25, 0.25], 40, 80, 32, "letterbox")
        assert [round(float(v), 6) for v in back] == [0.25, 0.5, 0.5, 0.25], back
        assert list(geometry.validate_box([10, 20, 30, 100], "xyxy", 200, 100)) == [0.2, 0.3, 0.4, 0.2]
        print("ok")
        """
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_the_file_readers_and_the_figures_load_neither_keras_nor_tensorflow():
    result = run_blocked(
        """
        import sys
        import locnet_tf.data.sources
        import locnet_tf.core.figures
        import locnet_tf.runtime
        import locnet_tf.runtime.smoothing
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
        assert not loaded, loaded
        print("ok")
        """
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
