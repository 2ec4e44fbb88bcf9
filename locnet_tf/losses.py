"""The masked localization loss.

Two modes:

- ``"lecture"`` reproduces the course's formula exactly::

      L(ŷ, y) = Σ_i (ŷ_i − y_i)²   if y_1 = 1
      L(ŷ, y) = (ŷ_1 − y_1)²       if y_1 = 0

  averaged over the batch.

- ``"default"`` is the better-behaved practical version: logistic loss on
  ``p_c`` (averaged over all images), a box loss (``mse``, ``l1``, ``huber`` or
  ``giou``) and cross-entropy on the classes, both masked to images with an
  object and normalised by the number of positives in the batch (so a batch with
  no object at all gives exactly zero box and class loss, not a NaN).

`LossComponent` metrics report each part during training.
"""

import keras
from keras import ops

from locnet_tf import boxes as box_lib
from locnet_tf import target as target_lib

MODES = ("default", "lecture")
BOX_LOSSES = ("mse", "l1", "huber", "giou", "huber_giou")
# huber_giou: Huber + 0.4 * (1 - GIoU), so that with box_weight=5 the terms are
# DETR's 5 x L1 + 2 x GIoU: coordinates for a steady pull, GIoU because it is
# scale-invariant (an absolute loss barely notices a 20% error on a thin box).
GIOU_SHARE = 0.4
COMPONENTS = ("pc", "box", "class")


@keras.saving.register_keras_serializable(package="locnet_tf")
class LocalizationLoss(keras.losses.Loss):
    """Loss for `[p_c, b_x, b_y, b_h, b_w, c_1..c_K]` targets that ignores
    don't-care entries when there is no object.

    Args:
        mode: str. `"default"` (logistic + box + cross-entropy) or `"lecture"`
            (the course's squared-error formula).
        box_loss: str. Box term of the default mode: `"mse"`, `"l1"`, `"huber"`,
            `"giou"` or `"huber_giou"` (Huber + 0.4 x (1 - GIoU)).
        pc_weight: float. Weight of the presence term (default mode).
        box_weight: float. Weight of the box term (default mode).
        class_weight: float. Weight of the class term (default mode).
        huber_delta: float. Transition point of the Huber box loss.
        name: str. Name of the loss.
        reduction: str. Keras reduction; the default averages over the batch.
    """

    def __init__(
        self,
        mode="default",
        box_loss="huber_giou",
        pc_weight=1.0,
        box_weight=5.0,
        class_weight=1.0,
        huber_delta=0.05,
        name="localization_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
        if box_loss not in BOX_LOSSES:
            raise ValueError(f"box_loss must be one of {BOX_LOSSES}, got {box_loss!r}.")
        self.mode = mode
        self.box_loss = box_loss
        self.pc_weight = float(pc_weight)
        self.box_weight = float(box_weight)
        self.class_weight = float(class_weight)
        self.huber_delta = float(huber_delta)

    # Per-image terms ----------------------------------------------------------

    def _box_term(self, box_true, box_pred):
        """Per-image box loss, shape (B,)."""
        if self.box_loss == "giou":
            return 1.0 - box_lib.giou(box_true, box_pred)
        diff = box_pred - box_true
        if self.box_loss == "mse":
            return ops.sum(ops.square(diff), axis=-1)
        a = ops.abs(diff)
        if self.box_loss == "l1":
            return ops.sum(a, axis=-1)
        # huber, scaled by 1/delta so its slope far from 0 is 1 like L1.
        d = self.huber_delta
        huber = ops.sum(ops.where(a < d, 0.5 * ops.square(a) / d, a - 0.5 * d), axis=-1)
        if self.box_loss == "huber":
            return huber
        return huber + GIOU_SHARE * (1.0 - box_lib.giou(box_true, box_pred))  # huber_giou

    def components(self, y_true, y_pred):
        """The unweighted loss terms as per-image tensors of shape (B,).

        Returns:
            dict with `"pc"`, `"box"`, `"class"` and `"positives"` (the mask).
            In the default mode the box and class terms are already scaled by
            `B / max(#positives, 1)`, so their batch mean is the mean over
            positives. In the lecture mode `"pc"` is `(ŷ_1 − y_1)²`, `"box"`
            the box squared error and `"class"` the class squared error, both
            only where `y_1 = 1`.
        """
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        pc_true, box_true, cls_true = target_lib.split(y_true)
        pc_pred, box_pred, cls_pred = target_lib.split(y_pred)
        positive = ops.cast(pc_true > 0.5, "float32")

        if self.mode == "lecture":
            pc = ops.square(pc_pred - pc_true)
            box = positive * ops.sum(ops.square(box_pred - box_true), axis=-1)
            cls = positive * ops.sum(ops.square(cls_pred - cls_true), axis=-1)
            return {"pc": pc, "box": box, "class": cls, "positives": positive}

        pc = keras.losses.binary_crossentropy(pc_true[..., None], pc_pred[..., None])
        box = self._box_term(box_true, box_pred)
        cls = keras.losses.categorical_crossentropy(cls_true, cls_pred)
        # Normalise by the number of positives: mean over the batch of
        # positive * term * B / n_pos equals sum(positive * term) / n_pos.
        batch = ops.cast(ops.shape(positive)[0], "float32")
        scale = positive * batch / ops.maximum(ops.sum(positive), 1.0)
        return {"pc": pc, "box": box * scale, "class": cls * scale, "positives": positive}

    def call(self, y_true, y_pred):
        c = self.components(y_true, y_pred)
        if self.mode == "lecture":
            return c["pc"] + c["box"] + c["class"]
        return (
            self.pc_weight * c["pc"]
            + self.box_weight * c["box"]
            + self.class_weight * c["class"]
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            mode=self.mode,
            box_loss=self.box_loss,
            pc_weight=self.pc_weight,
            box_weight=self.box_weight,
            class_weight=self.class_weight,
            huber_delta=self.huber_delta,
        )
        return config


@keras.saving.register_keras_serializable(package="locnet_tf")
class LossComponent(keras.metrics.Mean):
    """Streams one unweighted term of a `LocalizationLoss`, to watch it train.

    Args:
        component: str. `"pc"`, `"box"` or `"class"`.
        loss: `LocalizationLoss` or its config dict. The loss whose term is shown.
        name: str. Metric name; defaults to `"<component>_loss"`.
    """

    def __init__(self, component, loss=None, name=None, dtype=None):
        if component not in COMPONENTS:
            raise ValueError(f"component must be one of {COMPONENTS}, got {component!r}.")
        super().__init__(name=name or f"{component}_loss", dtype=dtype)
        if loss is None:
            loss = LocalizationLoss()
        elif isinstance(loss, dict):
            loss = LocalizationLoss.from_config(loss)
        self.component = component
        self.loss_fn = loss

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self.loss_fn.components(y_true, y_pred)[self.component]
        return super().update_state(values, sample_weight=sample_weight)

    def get_config(self):
        return {
            "component": self.component,
            "loss": self.loss_fn.get_config(),
            "name": self.name,
            "dtype": self.dtype,
        }


def loss_component_metrics(loss):
    """One `LossComponent` metric per term of `loss`: `pc_loss`, `box_loss`, `class_loss`."""
    return [LossComponent(c, loss) for c in COMPONENTS]
