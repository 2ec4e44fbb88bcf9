import keras
import numpy as np
import pytest

from locnet_tf.model import metrics as M

from helpers import numpy_report, random_predictions, random_targets


def _make_close_predictions(y, seed):
    # Predictions near the truth so that every metric lands strictly inside (0, 1).
    rng = np.random.default_rng(seed)
    p = random_predictions(len(y), y.shape[1] - 5, seed=seed)
    near = rng.random(len(y)) < 0.7
    p[near, 1:5] = y[near, 1:5] + rng.normal(0, 0.03, (near.sum(), 4))
    p[near, 0] = np.where(y[near, 0] == 1, 0.9, 0.1)
    return p


@pytest.mark.parametrize("num_classes", [1, 3, 5])
def test_metrics_match_numpy_reference_streaming(num_classes):
    y = random_targets(100, num_classes, positive_share=0.6, seed=num_classes)
    p = _make_close_predictions(y, seed=10 + num_classes)
    expected = numpy_report(y, p)
    for metric in M.localization_metrics():
        for start in range(0, 100, 32):  # several batches: the metrics must stream
            metric.update_state(y[start : start + 32], p[start : start + 32])
        assert float(metric.result()) == pytest.approx(expected[metric.name], abs=1e-5), metric.name
    assert 0 < expected["loc_accuracy"] < 1 and 0 < expected["mean_iou"] < 1


def test_background_only_counts_for_presence():
    y = np.zeros((2, 8), np.float32)
    p = np.array([[0.2, 0.5, 0.5, 0.1, 0.1, 1, 0, 0], [0.7, 0.5, 0.5, 0.1, 0.1, 1, 0, 0]], np.float32)
    results = {}
    for metric in M.localization_metrics():
        metric.update_state(y, p)
        results[metric.name] = float(metric.result())
    # one of two background images right; no positives, so class/iou have nothing to count
    assert results == {"pc_accuracy": 0.5, "class_accuracy": 0.0, "mean_iou": 0.0, "loc_accuracy": 0.5}


def test_loc_accuracy_needs_class_and_iou():
    y = np.array([[1, 0.5, 0.5, 0.4, 0.4, 0, 1, 0]] * 3, np.float32)
    p = np.array(
        [
            [0.9, 0.5, 0.5, 0.4, 0.4, 0.1, 0.8, 0.1],  # all right
            [0.9, 0.5, 0.5, 0.4, 0.4, 0.8, 0.1, 0.1],  # wrong class
            [0.9, 0.8, 0.8, 0.4, 0.4, 0.1, 0.8, 0.1],  # box off: IoU = 0.01/0.31 < 0.5
        ],
        np.float32,
    )
    metric = M.LocalizationAccuracy()
    metric.update_state(y, p)
    assert float(metric.result()) == pytest.approx(1 / 3)


def test_threshold_and_reset_and_config():
    y = np.array([[1, 0.5, 0.5, 0.4, 0.4, 1]], np.float32)
    p = np.array([[0.6, 0.5, 0.5, 0.4, 0.4, 1]], np.float32)
    strict = M.PresenceAccuracy(threshold=0.7)
    strict.update_state(y, p)
    assert float(strict.result()) == 0.0
    strict.reset_state()
    assert float(strict.result()) == 0.0
    for metric in M.localization_metrics(0.3) + [M.LocalizationAccuracy(iou_threshold=0.7)]:
        again = keras.metrics.deserialize(keras.metrics.serialize(metric))
        assert type(again) is type(metric) and again.get_config() == metric.get_config()


def test_report_breaks_results_down_by_object_size():
    from locnet_tf.evaluate.__main__ import format_report
    from locnet_tf.evaluate.report import report_from_arrays

    y = np.array(
        [
            [1, 0.5, 0.5, 0.05, 0.1, 1, 0, 0],  # area 0.5%: small
            [1, 0.5, 0.5, 0.1, 0.2, 1, 0, 0],  # 2%: medium
            [1, 0.5, 0.5, 0.5, 0.4, 0, 1, 0],  # 20%: large
            [0, 0, 0, 0, 0, 0, 0, 0],  # background: in no bucket
        ],
        np.float32,
    )
    p = np.array(
        [
            [0.9, 0.5, 0.5, 0.1, 0.15, 1, 0, 0],  # found, 2x too tall, 1.5x too wide: IoU 1/3
            [0.2, 0.5, 0.5, 0.1, 0.2, 1, 0, 0],  # missed (p_c below 0.5), box exact
            [0.9, 0.5, 0.5, 0.4, 0.4, 0, 1, 0],  # found, 0.8x as tall: IoU 0.8
            [0.9, 0.5, 0.5, 0.4, 0.4, 0, 1, 0],
        ],
        np.float32,
    )
    sizes = report_from_arrays(y, p, ["pedestrian", "car", "motorcycle"])["per_size"]
    assert [(name, v["count"]) for name, v in sizes.items()] == [("small", 1), ("medium", 1), ("large", 1)]
    assert sizes["small"]["presence_recall"] == 1.0 and sizes["medium"]["presence_recall"] == 0.0
    assert sizes["small"]["mean_iou"] == pytest.approx(1 / 3, abs=1e-6)
    assert sizes["small"]["loc_accuracy"] == 0.0  # IoU < 0.5
    assert sizes["medium"]["loc_accuracy"] == 0.0  # missed
    assert sizes["large"]["loc_accuracy"] == 1.0 and sizes["large"]["mean_iou"] == pytest.approx(0.8)
    assert sizes["small"]["size_bias"] == pytest.approx({"h": 1.0, "w": 0.5})
    assert sizes["large"]["size_bias"] == pytest.approx({"h": -0.2, "w": 0.0}, abs=1e-6)
    assert sizes["large"]["area"] == [0.1, None]
    report = report_from_arrays(y, p, ["pedestrian", "car", "motorcycle"])
    table = format_report(report)
    assert "small <1%" in table and "medium 1%-10%" in table and "large >=10%" in table
    assert "+1.000" in table  # the small box's height bias
    # a bucket with no objects shows dashes, not zeros that read as a failure
    only_large = format_report(report_from_arrays(y[2:], p[2:], ["pedestrian", "car", "motorcycle"]))
    small_row = next(line for line in only_large.splitlines() if "small <1%" in line)
    assert small_row.split()[2:] == ["0", "-", "-", "-", "-", "-"], small_row


def test_a_box_on_another_labelled_object_counts_as_found_by_the_any_object_figure():
    from locnet_tf.evaluate.__main__ import format_report
    from locnet_tf.evaluate.report import report_from_arrays

    names = ["pedestrian", "car", "motorcycle"]
    target = [1, 0.3, 0.5, 0.4, 0.4, 0, 1, 0]  # a car on the left (the largest)
    other_car = (1, np.array([0.75, 0.5, 0.38, 0.38]))  # another car on the right
    y = np.array([target] * 5 + [[0, 0, 0, 0, 0, 0, 0, 0]] * 2, np.float32)
    on_the_other = [0.9, 0.75, 0.5, 0.38, 0.38, 0, 1, 0]
    p = np.array(
        [
            [0.9, 0.3, 0.5, 0.4, 0.4, 0, 1, 0],  # the target: right by both figures
            on_the_other,  # the other car: right by the any-object figure only
            [0.9, 0.75, 0.5, 0.38, 0.38, 1, 0, 0],  # the other car's box, named pedestrian: wrong
            [0.3, 0.75, 0.5, 0.38, 0.38, 0, 1, 0],  # the other car, but "no object": wrong
            on_the_other,  # a photo whose only object is the target: wrong
            [0.1, 0, 0, 0, 0, 1, 0, 0],  # background, right
            on_the_other,  # background said "car": wrong, whatever objects the row lists
        ],
        np.float32,
    )
    others = [[other_car]] * 4 + [[], [], [other_car]]
    report = report_from_arrays(y, p, names, others=others)
    assert report["loc_accuracy"] == pytest.approx(2 / 7)
    assert report["loc_accuracy_any_object"] == pytest.approx(3 / 7)
    assert report["several_objects"] == {"images": 4, "loc_accuracy": 0.25, "loc_accuracy_any_object": 0.5}
    assert "4 images with several labelled objects" in format_report(report)
    # Without the other objects (TFDS, the built-in data) the report does not pretend to know.
    plain = report_from_arrays(y, p, names)
    assert "loc_accuracy_any_object" not in plain and "several_objects" not in plain
    assert "several labelled objects" not in format_report(plain)
    with pytest.raises(ValueError, match="others has 6 entries for 7 images"):
        report_from_arrays(y, p, names, others=others[:6])
