"""Plots leave the caller's matplotlib alone (notebooks keep their inline backend)."""

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO


def test_plots_keep_the_callers_backend_and_pyplot_state(tmp_path):
    # A subprocess: the backend is process-wide, and pytest's may be anything.
    code = textwrap.dedent(f"""
        import matplotlib
        import matplotlib.pyplot as plt
        from locnet_tf.core import figures as plots
        path = plots.training_curves({{"loss": [1.0, 0.5], "val_loss": [1.2, 0.7]}}, {str(tmp_path / "c.png")!r})
        figure = plots.confusion_matrix([[3, 1], [0, 4]], ["background", "car"])
        figure.savefig({str(tmp_path / "m.png")!r})
        print(matplotlib.get_backend(), plt.get_fignums())
    """)
    env = dict(os.environ, MPLBACKEND="svg", TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[-2] == "svg []", out.stdout + out.stderr
    assert (tmp_path / "c.png").stat().st_size > 1000 and (tmp_path / "m.png").stat().st_size > 1000


def test_training_curves_mark_where_progressive_resizing_changes_the_input_size():
    from locnet_tf.core import figures as plots

    history = {"epoch": [0, 1, 2, 3], "loss": [4, 3, 2, 1], "image_size": [96, 96, 128, 128]}
    figure = plots.training_curves(history)
    for axis in figure.axes:
        marks = [line for line in axis.get_lines() if line.get_label() == "128 px from here"]
        assert len(marks) == 1 and list(marks[0].get_xdata()) == [2.5, 2.5], axis.get_title()
    plain = plots.training_curves({"epoch": [0, 1], "loss": [2, 1]})
    assert not any("px from here" in line.get_label() for axis in plain.axes for line in axis.get_lines())


def test_the_worst_gallery_ranks_a_box_on_another_labelled_object_by_its_iou_with_that_one(tmp_path, monkeypatch):
    import numpy as np

    from locnet_tf.core import figures as plots
    from locnet_tf.evaluate.pictures import evaluation_pictures

    drawn = {}

    def gallery(images, y_true, y_pred, class_names, threshold, indices, path=None, title=None, **extra):
        drawn[path.name] = (list(indices), title, extra.get("others"), extra.get("other_iou"))
        return path

    real = plots.prediction_gallery
    monkeypatch.setattr(plots, "prediction_gallery", gallery)
    names = ["pedestrian", "car"]
    y = np.array([[1, 0.3, 0.5, 0.4, 0.3, 0, 1]] * 4, np.float32)  # a car on the left, the largest
    p = np.array(
        [
            [0.9, 0.32, 0.5, 0.4, 0.3, 0, 1],  # the target, IoU about 0.9
            [0.9, 0.75, 0.5, 0.3, 0.3, 0, 1],  # the other car exactly: IoU 0 with the target
            [0.9, 0.5, 0.1, 0.1, 0.1, 0, 1],  # nothing there: a real miss
            [0.9, 0.75, 0.5, 0.3, 0.3, 1, 0],  # the other car's box, named pedestrian: a miss too
        ],
        np.float32,
    )
    car = (1, np.array([0.75, 0.5, 0.3, 0.3]))
    others = [[], [car], [car], [car]]
    images = np.zeros((4, 16, 16, 3), np.uint8)
    evaluation_pictures(images, y, p, names, 0.5, tmp_path, gallery_size=4, others=others)
    worst, title, passed, other_iou = drawn["gallery_worst.png"]
    real(images, y, p, names, 0.5, worst, tmp_path / "drawn.png", title=title, others=others, other_iou=other_iou)
    assert (tmp_path / "drawn.png").stat().st_size > 1000
    assert worst == [2, 3, 0, 1]  # the box on the other car is not among the worst answers; naming it wrong is
    assert list(other_iou) == pytest.approx([0, 1, 0, 0])
    assert "dashed: other labelled objects" in title and passed is others
    drawn.clear()
    evaluation_pictures(images, y, p, names, 0.5, tmp_path, gallery_size=4)  # a source that keeps one object
    worst, title, _, _ = drawn["gallery_worst.png"]
    assert worst[-1] == 0 and "dashed" not in title
