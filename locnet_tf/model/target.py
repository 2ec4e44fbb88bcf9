"""The target vector: the one place that knows its layout.

``y = [p_c, b_x, b_y, b_h, b_w, c_1, ..., c_K]``

- ``p_c``: 1 when an object of one of the K classes is present, else 0.
- ``b_x, b_y, b_h, b_w``: box centre, then height, then width, relative to the
  image ((0, 0) top-left, (1, 1) bottom-right).
- ``c_1..c_K``: one-hot class.

When ``p_c = 0`` every other entry is "don't care"; :func:`TargetLayout.encode`
writes zeros there, and the loss and metrics ignore them.
"""

import dataclasses

import numpy as np
from keras import ops

from locnet_tf.core import geometry

DEFAULT_CLASSES = ("pedestrian", "car", "motorcycle")

# Named positions, valid for every K.
P_C = 0
BOX = slice(1, 5)
BOX_NAMES = ("b_x", "b_y", "b_h", "b_w")
CLASSES_START = 5


def vector_size(num_classes):
    """Length of the target vector for `num_classes` classes: 5 + K."""
    return CLASSES_START + int(num_classes)


def split(y):
    """Splits `(..., 5 + K)` vectors into `(p_c (...,), box (..., 4), classes (..., K))`."""
    y = ops.convert_to_tensor(y)
    return y[..., P_C], y[..., BOX], y[..., CLASSES_START:]


@dataclasses.dataclass(frozen=True)
class Decoded:
    """What a prediction says, for one image (numpy scalars / arrays).

    present: bool. `p_c >= threshold`.
    p_c: float. The presence probability.
    box: float32[4]. `[b_x, b_y, b_h, b_w]` relative (meaningful when present).
    class_id: int. Index of the most likely class.
    class_name: str. Its name.
    class_score: float. Its probability given that an object is present.
    score: float. `p_c * class_score`, the probability of "this class is here".
    """

    present: bool
    p_c: float
    box: np.ndarray
    class_id: int
    class_name: str
    class_score: float
    score: float

    def box_xyxy(self, height=1.0, width=1.0):
        """Corners `[x1, y1, x2, y2]`, relative by default or in pixels."""
        corners = np.stack(geometry.target_to_corners(np.asarray(self.box, np.float32)), axis=-1)
        return corners * np.float32([width, height, width, height])

    def to_dict(self):
        return {
            "present": bool(self.present),
            "p_c": float(self.p_c),
            "box": [float(v) for v in self.box],
            "class_id": int(self.class_id),
            "class_name": self.class_name,
            "class_score": float(self.class_score),
            "score": float(self.score),
        }


class TargetLayout:
    """Layout of the target vector for a given list of classes.

    Args:
        class_names: sequence of str. The class names, in target order.
            Defaults to `("pedestrian", "car", "motorcycle")`.
    """

    def __init__(self, class_names=DEFAULT_CLASSES):
        names = tuple(str(n) for n in class_names)
        if not names:
            raise ValueError("A target needs at least one class name.")
        if len(set(names)) != len(names):
            raise ValueError(f"Class names must be unique, got {list(names)}.")
        self.class_names = names

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def size(self):
        return vector_size(self.num_classes)

    @property
    def classes(self):
        """Slice of the class entries."""
        return slice(CLASSES_START, self.size)

    def entry_names(self):
        """Names of the vector entries, e.g. for plots and tables."""
        return ("p_c",) + BOX_NAMES + tuple(f"c_{n}" for n in self.class_names)

    def class_id(self, label):
        """Index of `label` (a name or an int), with a clear error when unknown."""
        if isinstance(label, (int, np.integer)):
            if not 0 <= int(label) < self.num_classes:
                raise ValueError(
                    f"Class id {int(label)} out of range for {self.num_classes} classes {list(self.class_names)}."
                )
            return int(label)
        try:
            return self.class_names.index(str(label))
        except ValueError:
            raise ValueError(f"Unknown class {label!r}; known classes: {list(self.class_names)}.") from None

    def encode(self, box=None, label=None, box_format="target", height=None, width=None):
        """Encodes one example as a float32 numpy vector.

        Args:
            box: 4 numbers in `box_format`, or None for background.
            label: class name or id, or None for background.
            box_format: str. Format of `box` (see `locnet_tf.core.geometry`).
            height: int. Image height, for pixel formats.
            width: int. Image width, for pixel formats.

        Returns:
            float32[5 + K]. Zeros in the don't-care entries for background.
        """
        y = np.zeros(self.size, np.float32)
        if box is None and label is None:
            return y
        if box is None or label is None:
            raise ValueError("An object needs both a box and a label (give neither for background).")
        y[P_C] = 1.0
        y[BOX] = geometry.validate_box(box, box_format, height=height, width=width)
        y[CLASSES_START + self.class_id(label)] = 1.0
        return y

    def encode_tensor(self, present, box, class_id):
        """Graph-friendly encode for tf.data: tensors in, a `(..., 5 + K)` tensor out.

        Args:
            present: bool/0-1 tensor of shape `(...)`.
            box: float tensor `(..., 4)` in the target format.
            class_id: int tensor `(...)`; ignored where not present.
        """
        p = ops.cast(present, "float32")
        box = ops.convert_to_tensor(box, "float32") * p[..., None]
        one_hot = ops.one_hot(ops.cast(class_id, "int32"), self.num_classes) * p[..., None]
        return ops.concatenate([p[..., None], box, one_hot], axis=-1)

    def decode(self, y, threshold=0.5):
        """Decodes one vector `(5 + K,)` into a `Decoded`, or a batch into a list."""
        y = np.asarray(y, dtype=np.float32)
        if y.shape[-1] != self.size:
            raise ValueError(
                f"Expected vectors of length {self.size} (5 + {self.num_classes} classes), got shape {y.shape}."
            )
        if y.ndim > 1:
            return [self.decode(row, threshold) for row in y.reshape(-1, self.size)]
        probs = y[self.classes]
        class_id = int(np.argmax(probs))
        p_c = float(y[P_C])
        class_score = float(probs[class_id])
        return Decoded(
            present=p_c >= threshold,
            p_c=p_c,
            box=y[BOX].copy(),
            class_id=class_id,
            class_name=self.class_names[class_id],
            class_score=class_score,
            score=p_c * class_score,
        )

    def get_config(self):
        return {"class_names": list(self.class_names)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, TargetLayout) and other.class_names == self.class_names

    def __hash__(self):
        return hash(self.class_names)

    def __repr__(self):
        return f"TargetLayout(class_names={list(self.class_names)})"


# ----------------------------------------------------------------------------
# The named outputs of exported models (and of every predictor): the vector, split and named.
#
#     p_c           (B,)    presence probability
#     box           (B, 4)  [b_x, b_y, b_h, b_w] relative to the model input
#     box_xyxy      (B, 4)  [x1, y1, x2, y2] relative
#     class_id      (B,)    int32 arg-max class
#     class_scores  (B, K)  class probabilities given an object


def vector_to_outputs(y):
    """Splits `(B, 5 + K)` target vectors into the named outputs of exports.

    Works on tensors inside a traced graph and on numpy arrays alike (returns
    tensors; wrap with `np.asarray` for numpy).
    """
    import tensorflow as tf

    y = tf.convert_to_tensor(y, tf.float32)
    box = y[:, BOX]
    x1, y1, x2, y2 = geometry.target_to_corners(box)
    scores = y[:, CLASSES_START:]
    return {
        "p_c": y[:, P_C],
        "box": box,
        "box_xyxy": tf.stack([x1, y1, x2, y2], axis=-1),
        # tf.argmax, not keras.ops.argmax: Keras's TF argmax special-cases -0.0
        # with a BitwiseAnd that TFLite has no built-in kernel for.
        "class_id": tf.argmax(scores, axis=-1, output_type=tf.int32),
        "class_scores": scores,
    }


def outputs_to_vector(outputs):
    """The inverse of `vector_to_outputs`: named outputs -> `(B, 5 + K)` numpy."""
    p_c = np.asarray(outputs["p_c"], np.float32).reshape(-1, 1)
    box = np.asarray(outputs["box"], np.float32).reshape(len(p_c), 4)
    scores = np.asarray(outputs["class_scores"], np.float32).reshape(len(p_c), -1)
    return np.concatenate([p_c, box, scores], axis=1)
