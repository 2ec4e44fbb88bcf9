import numpy as np
import pytest
import tensorflow as tf

from locnet_tf.model import target as T


def test_layout_sizes_and_names():
    layout = T.TargetLayout()
    assert layout.num_classes == 3 and layout.size == 8
    assert layout.entry_names() == (
        "p_c",
        "b_x",
        "b_y",
        "b_h",
        "b_w",
        "c_pedestrian",
        "c_car",
        "c_motorcycle",
    )
    assert T.vector_size(5) == 10


def test_encode_object_and_background():
    layout = T.TargetLayout()
    # 100 wide x 200 high; corners (10, 20)-(50, 100): cx 0.3, cy 0.3, h 0.4, w 0.4
    y = layout.encode([10, 20, 50, 100], "motorcycle", box_format="xyxy", height=200, width=100)
    np.testing.assert_allclose(y, [1, 0.3, 0.3, 0.4, 0.4, 0, 0, 1], atol=1e-6)
    np.testing.assert_array_equal(layout.encode(), np.zeros(8))


def test_encode_errors():
    layout = T.TargetLayout()
    with pytest.raises(ValueError, match="Unknown class 'truck'"):
        layout.encode([0.5, 0.5, 0.2, 0.2], "truck")
    with pytest.raises(ValueError, match="both a box and a label"):
        layout.encode(label="car")
    with pytest.raises(ValueError, match="out of range"):
        layout.class_id(3)
    with pytest.raises(ValueError, match="unique"):
        T.TargetLayout(["a", "a"])


def test_encode_tensor_matches_encode_eager_and_in_graph():
    layout = T.TargetLayout(["a", "b"])
    present = tf.constant([True, False])
    box = tf.constant([[0.5, 0.4, 0.2, 0.3], [0.9, 0.9, 0.9, 0.9]])
    cls = tf.constant([1, 1])
    expected = np.stack([layout.encode([0.5, 0.4, 0.2, 0.3], "b"), layout.encode()])
    np.testing.assert_allclose(np.asarray(layout.encode_tensor(present, box, cls)), expected)
    ds = tf.data.Dataset.from_tensor_slices((present, box, cls)).map(layout.encode_tensor)
    np.testing.assert_allclose(np.stack([v.numpy() for v in ds]), expected)


def test_decode_threshold_and_scores():
    layout = T.TargetLayout()
    y = np.array([0.8, 0.5, 0.5, 0.2, 0.4, 0.1, 0.7, 0.2], np.float32)
    d = layout.decode(y, threshold=0.5)
    assert d.present and d.class_name == "car" and d.class_id == 1
    assert d.score == pytest.approx(0.8 * 0.7)
    assert not layout.decode(y, threshold=0.9).present
    # corners: x 0.5 -/+ 0.2, y 0.5 -/+ 0.1; in a 200 wide x 100 high image:
    # x1 = 0.3 * 200 = 60, y1 = 0.4 * 100 = 40, x2 = 0.7 * 200 = 140, y2 = 0.6 * 100 = 60
    np.testing.assert_allclose(d.box_xyxy(height=100, width=200), [60, 40, 140, 60], atol=1e-4)
    batch = layout.decode(np.stack([y, np.zeros(8, np.float32)]))
    assert [b.present for b in batch] == [True, False]
    with pytest.raises(ValueError, match="length 8"):
        layout.decode(np.zeros(7))
