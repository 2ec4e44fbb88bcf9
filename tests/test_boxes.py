import numpy as np
import pytest
import tensorflow as tf

from locnet_tf.model import boxes as B
from locnet_tf.core import errors, geometry

# One box used throughout, in a 100 (wide) x 200 (high) image, chosen so that no
# two of its numbers agree (a swapped x/y or h/w cannot pass unnoticed):
# pixel corners x1=10, y1=20, x2=30, y2=100.
#   centre x = (10 + 30) / 2 / 100 = 0.2      centre y = (20 + 100) / 2 / 200 = 0.3
#   height   = (100 - 20) / 200    = 0.4      width    = (30 - 10) / 100      = 0.2
H, W = 200, 100
TARGET = [0.2, 0.3, 0.4, 0.2]
FORMS = {
    "xyxy": [10, 20, 30, 100],
    "rel_xyxy": [0.1, 0.1, 0.3, 0.5],  # 10/100, 20/200, 30/100, 100/200
    "yolo": [0.2, 0.3, 0.2, 0.4],  # cx, cy, w, h: width before height
    "coco": [10, 20, 20, 80],  # x, y, w, h in pixels
    "tfds": [0.1, 0.1, 0.5, 0.3],  # ymin=20/200, xmin=10/100, ymax=100/200, xmax=30/100
    "target": TARGET,
}


@pytest.mark.parametrize("fmt", sorted(FORMS))
def test_to_and_from_target_hand_worked(fmt):
    got = np.asarray(B.to_target(FORMS[fmt], fmt, height=H, width=W))
    np.testing.assert_allclose(got, TARGET, atol=1e-6)
    back = np.asarray(B.from_target(TARGET, fmt, height=H, width=W))
    np.testing.assert_allclose(back, FORMS[fmt], atol=1e-5)


def test_height_comes_before_width():
    # A wide box: 80 px wide, 20 px high in a 100x100 image.
    t = np.asarray(B.to_target([10, 40, 90, 60], "xyxy", height=100, width=100))
    np.testing.assert_allclose(t, [0.5, 0.5, 0.2, 0.8], atol=1e-6)  # [cx, cy, h, w]


@pytest.mark.parametrize("src", sorted(FORMS))
@pytest.mark.parametrize("dst", sorted(FORMS))
def test_round_trip_all_pairs_random(src, dst):
    rng = np.random.default_rng(0)
    c = rng.uniform(0.3, 0.7, (16, 2))
    s = rng.uniform(0.05, 0.5, (16, 2))
    target = np.concatenate([c, s], axis=1).astype(np.float32)
    a = B.from_target(target, src, height=H, width=W)
    b = B.from_target(B.to_target(a, src, height=H, width=W), dst, height=H, width=W)
    again = np.asarray(B.to_target(b, dst, height=H, width=W))
    np.testing.assert_allclose(again, target, atol=1e-5)


def test_works_inside_tf_function():
    fn = tf.function(lambda b: B.to_target(b, "xyxy", height=H, width=W))
    np.testing.assert_allclose(fn(tf.constant([FORMS["xyxy"]], tf.float32)).numpy(), [TARGET], atol=1e-6)


def test_pixel_format_needs_size():
    with pytest.raises(ValueError, match="height"):
        B.to_target([10, 20, 50, 100], "xyxy")


def test_unknown_format():
    with pytest.raises(ValueError, match="Unknown box format 'xyhw'"):
        B.to_target(TARGET, "xyhw")


def test_iou_hand_worked():
    # a: corners (0.1, 0.1)-(0.5, 0.5): area 0.4 * 0.4 = 0.16
    # b: corners (0.3, 0.3)-(0.7, 0.7): area 0.16
    # intersection (0.3, 0.3)-(0.5, 0.5): 0.2 * 0.2 = 0.04
    # union 0.16 + 0.16 - 0.04 = 0.28 -> IoU = 0.04 / 0.28 = 1/7
    # enclosing (0.1, 0.1)-(0.7, 0.7): 0.6 * 0.6 = 0.36
    # GIoU = 1/7 - (0.36 - 0.28) / 0.36 = 0.142857 - 0.222222 = -0.079365
    a = [0.3, 0.3, 0.4, 0.4]
    b = [0.5, 0.5, 0.4, 0.4]
    assert float(B.iou(a, b)) == pytest.approx(1 / 7, abs=1e-6)
    assert float(B.giou(a, b)) == pytest.approx(1 / 7 - 0.08 / 0.36, abs=1e-6)


def test_iou_non_square_and_disjoint():
    # a: cx=0.25, cy=0.5, h=0.2, w=0.5 -> corners (0, 0.4)-(0.5, 0.6), area 0.1
    # b: cx=0.5, cy=0.5, h=0.2, w=0.5  -> corners (0.25, 0.4)-(0.75, 0.6), area 0.1
    # intersection (0.25, 0.4)-(0.5, 0.6) = 0.25 * 0.2 = 0.05; union 0.15 -> IoU 1/3
    # enclosing (0, 0.4)-(0.75, 0.6) = 0.15 = union -> GIoU = IoU = 1/3
    a = [0.25, 0.5, 0.2, 0.5]
    b = [0.5, 0.5, 0.2, 0.5]
    assert float(B.iou(a, b)) == pytest.approx(1 / 3, abs=1e-6)
    assert float(B.giou(a, b)) == pytest.approx(1 / 3, abs=1e-6)
    # disjoint: c corners (0.8, 0.8)-(1, 1) area 0.04, a's area 0.1; enclosing
    # (0, 0.4)-(1, 1) = 0.6; GIoU = 0 - (0.6 - 0.14) / 0.6 = -0.766667
    c = [0.9, 0.9, 0.2, 0.2]
    assert float(B.iou(a, c)) == 0.0
    assert float(B.giou(a, c)) == pytest.approx(-0.46 / 0.6, abs=1e-6)
    # identical boxes
    assert float(B.iou(a, a)) == pytest.approx(1.0)
    assert float(B.giou(a, a)) == pytest.approx(1.0)


def test_iou_is_elementwise_over_batches():
    a = np.array([[0.3, 0.3, 0.4, 0.4], [0.5, 0.5, 0.2, 0.2]], np.float32)
    b = np.array([[0.5, 0.5, 0.4, 0.4], [0.5, 0.5, 0.2, 0.2]], np.float32)
    np.testing.assert_allclose(np.asarray(B.iou(a, b)), [1 / 7, 1.0], atol=1e-6)


def test_validate_box_accepts_and_converts():
    np.testing.assert_allclose(geometry.validate_box(FORMS["xyxy"], "xyxy", H, W), TARGET, atol=1e-6)


@pytest.mark.parametrize(
    "box, fmt, match",
    [
        ([50, 20, 10, 100], "xyxy", "swapped"),
        ([0.5, 0.1, 0.1, 0.5], "rel_xyxy", "swapped"),
        ([10, 20, -5, 30], "coco", "negative size"),
        ([10, 20, 0, 30], "coco", "zero size"),
        ([10, 20, 150, 100], "xyxy", r"\[10, 20, 150, 100\] \(xyxy\) lies outside the image, 100x200 px: "),
        ([-0.2, 0.1, 0.5, 0.5], "rel_xyxy", "outside the image"),
        ([10, 20, 50, 100], "rel_xyxy", "look like pixels"),
        ([12, 30, 40, 60], "yolo", "look like pixels"),
        ([0.1, 0.2, 0.3], "rel_xyxy", "4 numbers"),
        ([0.1, float("nan"), 0.3, 0.4], "rel_xyxy", "non-finite"),
    ],
)
def test_validate_box_errors(box, fmt, match):
    with pytest.raises(errors.BoxError, match=match) as info:
        geometry.validate_box(box, fmt, height=H, width=W, where="labels.csv:7")
    assert "labels.csv:7" in str(info.value)


def test_validate_box_tolerance_clips_slight_overhang():
    # x2 = 102 in a 100-wide image: 2% over. Rejected by default, clipped with tolerance.
    with pytest.raises(errors.BoxError, match="outside"):
        geometry.validate_box([10, 20, 102, 100], "xyxy", H, W)
    t = geometry.validate_box([10, 20, 102, 100], "xyxy", H, W, tolerance=0.03)
    # clipped to x2 = 100: cx = (10 + 100) / 2 / 100 = 0.55, w = 0.9
    np.testing.assert_allclose(t, [0.55, 0.3, 0.4, 0.9], atol=1e-6)


@pytest.mark.parametrize(
    "fmt", ["xyxy", "rel_xyxy", "yxyx", "tfds", "coco", "rel_xywh", "center_xywh", "yolo", "center_yxhw", "target"]
)
def test_validate_box_agrees_with_keras(fmt):
    # validate_box converts with numpy (fast, per annotation); to_target with Keras.
    rng = np.random.default_rng(1)
    for _ in range(20):
        target = np.r_[rng.uniform(0.3, 0.7, 2), rng.uniform(0.05, 0.5, 2)].astype(np.float32)
        box = np.asarray(B.from_target(target, fmt, height=H, width=W))
        np.testing.assert_allclose(geometry.validate_box(box, fmt, H, W), target, atol=1e-5)
