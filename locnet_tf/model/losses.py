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

`MapSupervision` adds dense supervision of the spatial head's box map during
training (`map_terms`): a heatmap term that tells the soft arg-max where the
object's centre is, and a vote term that scores every cell's own box vote with
the same box loss as the final box.
"""

import threading

import keras
from keras import ops

from locnet_tf.model import boxes as box_lib
from locnet_tf.model import target as target_lib
from locnet_tf.core.config import BOX_LOSSES, MODES

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
        label_smoothing: float. Default mode: the class cross-entropy's
            target puts `1 - label_smoothing` on the true class and spreads the
            rest over all classes (Szegedy et al., 2016), so a model trained on
            few images is not pushed to ever more confident class scores.
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
        label_smoothing=0.0,
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
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
        self.label_smoothing = float(label_smoothing)

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
        cls = keras.losses.categorical_crossentropy(cls_true, cls_pred, label_smoothing=self.label_smoothing)
        # Normalise by the number of positives: mean over the batch of
        # positive * term * B / n_pos equals sum(positive * term) / n_pos.
        batch = ops.cast(ops.shape(positive)[0], "float32")
        scale = positive * batch / ops.maximum(ops.sum(positive), 1.0)
        return {"pc": pc, "box": box * scale, "class": cls * scale, "positives": positive}

    def call(self, y_true, y_pred):
        c = self.components(y_true, y_pred)
        if self.mode == "lecture":
            return c["pc"] + c["box"] + c["class"]
        return self.pc_weight * c["pc"] + self.box_weight * c["box"] + self.class_weight * c["class"]

    def get_config(self):
        config = super().get_config()
        config.update(
            mode=self.mode,
            box_loss=self.box_loss,
            pc_weight=self.pc_weight,
            box_weight=self.box_weight,
            class_weight=self.class_weight,
            huber_delta=self.huber_delta,
            label_smoothing=self.label_smoothing,
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


# ----------------------------------------------------------------------------
# Dense supervision of the spatial head's box map.

MAP_LAYERS = ("where_logits", "where_offsets", "where_sizes")
BOX_LAYER = "box"  # the SoftArgmaxBox; its inputs are the maps (sizes after any size_scale)


def centre_heatmap(box_true, height, width, sigma=0.15, min_sigma=0.5):
    """Where the soft arg-max should look: a Gaussian at the box centre, summing to 1.

    Args:
        box_true: `(B, 4)` target boxes `[b_x, b_y, b_h, b_w]`.
        height, width: int. The map's size in cells.
        sigma: float. Spread as a fraction of the box's size in cells, per axis.
        min_sigma: float. Spread at least this many cells (small boxes).

    Returns:
        `(B, H, W)` weights, each image's summing to 1.
    """
    bx, by, bh, bw = ops.unstack(ops.cast(box_true, "float32"), 4, axis=-1)
    cols = ops.reshape(ops.arange(width, dtype="float32"), (1, 1, width))
    rows = ops.reshape(ops.arange(height, dtype="float32"), (1, height, 1))
    sx = ops.maximum(min_sigma, sigma * bw * width)[:, None, None]
    sy = ops.maximum(min_sigma, sigma * bh * height)[:, None, None]
    dx = (cols + 0.5 - (bx * width)[:, None, None]) / sx
    dy = (rows + 0.5 - (by * height)[:, None, None]) / sy
    q = ops.exp(-0.5 * (ops.square(dx) + ops.square(dy)))
    return q / ops.sum(q, axis=(1, 2), keepdims=True)


def map_terms(loss, y_true, logits, offsets, sizes, sigma=0.15, min_sigma=0.5):
    """The dense-supervision terms of a spatial head's box map, per image.

    The final box is a soft arg-max over the map (`SoftArgmaxBox`), so the box
    loss alone reaches each cell only through its share of one weighted mean.
    These terms supervise the map itself, as CenterNet does:

    - heatmap: cross-entropy between the softmax over cells and a Gaussian at
      the true centre (`centre_heatmap`), so the weights move to the object;
    - vote: each cell's own box `((j + o_x) / W, (i + o_y) / H, h, w)` scored
      with `loss`'s box loss against the true box, weighted by that Gaussian,
      so the cells near the centre each vote for the right box.

    Args:
        loss: the `LocalizationLoss` whose box loss scores the votes.
        y_true: `(B, 5 + K)` targets.
        logits, offsets, sizes: the map's `(B, H, W, 1)`, `(B, H, W, 2)` (x, y)
            and `(B, H, W, 2)` (h, w) outputs, as `SoftArgmaxBox` takes them.
        sigma, min_sigma: the Gaussian's spread (see `centre_heatmap`).

    Returns:
        `(heatmap, vote)`, each of shape `(B,)`, zero where there is no object
        and scaled like the box term, so their batch mean is the mean over
        positives.
    """
    y_true = ops.cast(y_true, "float32")
    pc_true, box_true, _ = target_lib.split(y_true)
    height, width = logits.shape[1], logits.shape[2]
    q = centre_heatmap(box_true, height, width, sigma, min_sigma)
    log_p = ops.log_softmax(ops.reshape(ops.cast(logits, "float32"), (-1, height * width)), axis=-1)
    heatmap = -ops.sum(ops.reshape(q, (-1, height * width)) * log_p, axis=-1)
    votes = box_lib.map_votes(ops.cast(offsets, "float32"), ops.cast(sizes, "float32"))
    truth = ops.broadcast_to(box_true[:, None, None, :], ops.shape(votes))
    vote = ops.sum(q * loss._box_term(truth, votes), axis=(1, 2))
    positive = ops.cast(pc_true > 0.5, "float32")
    batch = ops.cast(ops.shape(positive)[0], "float32")
    scale = positive * batch / ops.maximum(ops.sum(positive), 1.0)
    return heatmap * scale, vote * scale


def has_box_map(model):
    """Whether `model` has a spatial head whose box map `MapSupervision` can supervise."""
    names = {layer.name for layer in model.layers}
    return all(name in names for name in MAP_LAYERS + (BOX_LAYER,))


class MapSupervision(keras.Model):
    """Trains a spatial-head model with `map_terms` added to its loss.

    Compile and fit this wrapper instead of the model: it shares the model's
    layers and weights, returns the same target vector, and adds
    `heatmap_weight * heatmap + vote_weight * vote` to the compiled loss (on
    training and validation data alike). It reports both terms as the
    `heatmap_loss` and `vote_loss` metrics. Save `wrapper.model`, not the
    wrapper: the model is what evaluation, export and prediction take.

    Args:
        model: a `build_model` model with `head="spatial"`.
        loss: the `LocalizationLoss` whose box loss scores the votes.
        heatmap_weight, vote_weight: float. Weights of the two terms.
        sigma, min_sigma: float. The Gaussian's spread (`centre_heatmap`).
    """

    def __init__(self, model, loss, heatmap_weight=1.0, vote_weight=5.0, sigma=0.15, min_sigma=0.5, **kwargs):
        super().__init__(name=f"{model.name}_map_supervision", **kwargs)
        if not has_box_map(model):
            raise ValueError(
                f"Model {model.name!r} has no box map to supervise (layers {MAP_LAYERS}): "
                "map supervision needs head='spatial'."
            )
        self.model = model
        self.box_loss = loss
        self.heatmap_weight, self.vote_weight = float(heatmap_weight), float(vote_weight)
        self.sigma, self.min_sigma = float(sigma), float(min_sigma)
        # The maps as the box layer reads them: the same tensors, so the votes
        # scored here are the ones it averages (sizes after any size_scale).
        maps = list(model.get_layer(BOX_LAYER).input[:3])
        self.probe = keras.Model(model.input, [model.output] + maps, name=f"{model.name}_with_maps")
        self.built = True  # its layers are the model's, built already
        # call() hands the maps to compute_loss() through this dict. The key is
        # the thread: a tf.distribute strategy traces each replica's step in
        # its own thread, and a replica's call and loss run in the same one.
        self._maps = {}
        self.heatmap_tracker = keras.metrics.Mean(name="heatmap_loss")
        self.vote_tracker = keras.metrics.Mean(name="vote_loss")

    def call(self, inputs, training=False):
        y_pred, *maps = self.probe(inputs, training=training)
        self._maps[threading.get_ident()] = maps
        return y_pred

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        maps = self._maps.pop(threading.get_ident(), None)
        if maps is None or y is None:
            return total
        heatmap, vote = map_terms(self.box_loss, y, *maps, sigma=self.sigma, min_sigma=self.min_sigma)
        heatmap, vote = ops.mean(heatmap), ops.mean(vote)
        self.heatmap_tracker.update_state(heatmap)
        self.vote_tracker.update_state(vote)
        return total + self.heatmap_weight * heatmap + self.vote_weight * vote


def model_of(trainer):
    """The model a trainer trains: `trainer.model` for a `MapSupervision`, else `trainer` itself."""
    return trainer.model if isinstance(trainer, MapSupervision) else trainer
