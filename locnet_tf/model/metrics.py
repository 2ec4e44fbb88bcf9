"""Streaming metrics for localization, named like the evaluation report's keys.

- `pc_accuracy`: presence right (`p_c >= threshold` vs. the truth), over all images.
- `class_accuracy`: arg-max class right, over images with an object.
- `mean_iou`: IoU of predicted and true box, over images with an object.
- `loc_accuracy`: for an image with an object, p_c, class and IoU >= 0.5 all
  right; for a background image, p_c right. Over all images.

Don't-care entries of background targets are never looked at.
"""

import keras
from keras import ops

from locnet_tf.model import boxes as box_lib
from locnet_tf.model import target as target_lib


class _RatioMetric(keras.metrics.Metric):
    """Sum of per-image scores over a count of images that qualify.

    Subclasses implement `_scores(y_true, y_pred) -> (score, counted)`, both (B,).
    """

    def __init__(self, threshold=0.5, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.threshold = float(threshold)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        score, counted = self._scores(y_true, y_pred)
        if sample_weight is not None:
            counted = counted * ops.reshape(ops.cast(sample_weight, "float32"), ops.shape(counted))
        self.total.assign_add(ops.sum(score * counted))
        self.count.assign_add(ops.sum(counted))

    def result(self):
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {"threshold": self.threshold, "name": self.name, "dtype": self.dtype}

    def _parts(self, y_true, y_pred):
        pc_true, box_true, cls_true = target_lib.split(y_true)
        pc_pred, box_pred, cls_pred = target_lib.split(y_pred)
        positive = ops.cast(pc_true > 0.5, "float32")
        pc_right = ops.cast(ops.cast(pc_pred >= self.threshold, "float32") == positive, "float32")
        cls_right = ops.cast(ops.argmax(cls_pred, axis=-1) == ops.argmax(cls_true, axis=-1), "float32")
        return positive, pc_right, cls_right, box_true, box_pred


@keras.saving.register_keras_serializable(package="locnet_tf")
class PresenceAccuracy(_RatioMetric):
    """Share of images whose presence (`p_c >= threshold`) is right.

    Args:
        threshold: float. Presence threshold on the predicted `p_c`.
        name: str. Metric name.
    """

    def __init__(self, threshold=0.5, name="pc_accuracy", dtype=None):
        super().__init__(threshold=threshold, name=name, dtype=dtype)

    def _scores(self, y_true, y_pred):
        positive, pc_right, _, _, _ = self._parts(y_true, y_pred)
        return pc_right, ops.ones_like(positive)


@keras.saving.register_keras_serializable(package="locnet_tf")
class ClassAccuracy(_RatioMetric):
    """Share of images with an object whose arg-max class is right.

    Args:
        name: str. Metric name.
    """

    def __init__(self, threshold=0.5, name="class_accuracy", dtype=None):
        super().__init__(threshold=threshold, name=name, dtype=dtype)

    def _scores(self, y_true, y_pred):
        positive, _, cls_right, _, _ = self._parts(y_true, y_pred)
        return cls_right, positive


@keras.saving.register_keras_serializable(package="locnet_tf")
class BoxMeanIoU(_RatioMetric):
    """Mean IoU between predicted and true boxes over images with an object.

    (Named `BoxMeanIoU` because `keras.metrics.MeanIoU` is the segmentation
    metric; its reported name is `mean_iou`, like the report key.)

    Args:
        name: str. Metric name.
    """

    def __init__(self, threshold=0.5, name="mean_iou", dtype=None):
        super().__init__(threshold=threshold, name=name, dtype=dtype)

    def _scores(self, y_true, y_pred):
        positive, _, _, box_true, box_pred = self._parts(y_true, y_pred)
        return box_lib.iou(box_true, box_pred), positive


@keras.saving.register_keras_serializable(package="locnet_tf")
class LocalizationAccuracy(_RatioMetric):
    """Share of images answered right: background needs p_c right; an object
    needs p_c right, the class right and IoU >= `iou_threshold`.

    Args:
        threshold: float. Presence threshold on the predicted `p_c`.
        iou_threshold: float. IoU needed for a box to count as right.
        name: str. Metric name.
    """

    def __init__(self, threshold=0.5, iou_threshold=0.5, name="loc_accuracy", dtype=None):
        super().__init__(threshold=threshold, name=name, dtype=dtype)
        self.iou_threshold = float(iou_threshold)

    def _scores(self, y_true, y_pred):
        positive, pc_right, cls_right, box_true, box_pred = self._parts(y_true, y_pred)
        box_right = ops.cast(box_lib.iou(box_true, box_pred) >= self.iou_threshold, "float32")
        score = pc_right * (1.0 - positive + positive * cls_right * box_right)
        return score, ops.ones_like(positive)

    def get_config(self):
        return {**super().get_config(), "iou_threshold": self.iou_threshold}


def localization_metrics(threshold=0.5):
    """The four report metrics, in report order."""
    return [
        PresenceAccuracy(threshold),
        ClassAccuracy(threshold),
        BoxMeanIoU(threshold),
        LocalizationAccuracy(threshold),
    ]
