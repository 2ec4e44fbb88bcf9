"""What a model says about one image: `Prediction`, and `decode` from the named outputs to it.

Its own module (numpy only) so that `video` and `smoothing` use `Prediction` without importing
the LiteRT predictor (`tflite`), which itself uses `video` nowhere: no import circle.
"""

import dataclasses

import numpy as np

from locnet_tf.core import geometry

OUTPUT_NAMES = ("p_c", "box", "box_xyxy", "class_id", "class_scores")


@dataclasses.dataclass(frozen=True)
class Prediction:
    """What the model says about one image.

    present: bool. `p_c >= presence_threshold`.
    p_c: float. Presence probability.
    class_id: int. Most likely class (meaningful when present).
    class_name: str. Its name.
    class_score: float. Its probability given an object.
    score: float. `p_c * class_score`.
    box: list of 4 floats. `[b_x, b_y, b_h, b_w]` relative to the original image.
    box_xyxy: list of 4 floats. `[x1, y1, x2, y2]` relative.
    box_pixels: list of 4 floats. `[x1, y1, x2, y2]` in original-image pixels.
    image_size: (height, width) of the original image.
    class_scores: list of K floats. Every class's probability given an object.
    """

    present: bool
    p_c: float
    class_id: int
    class_name: str
    class_score: float
    score: float
    box: list
    box_xyxy: list
    box_pixels: list
    image_size: tuple
    class_scores: list = None

    def to_dict(self):
        return dataclasses.asdict(self) | {"image_size": list(self.image_size)}


def decode(outputs, class_names, presence_threshold, height, width):
    """Named outputs of one image (box relative to that image) -> `Prediction`."""
    box = np.asarray(outputs["box"], np.float32).reshape(4)
    scores = np.asarray(outputs["class_scores"], np.float32).reshape(-1)
    class_id = int(np.asarray(outputs["class_id"]).reshape(-1)[0])
    p_c = float(np.asarray(outputs["p_c"]).reshape(-1)[0])
    corners = np.stack(geometry.target_to_corners(box))
    return Prediction(
        present=p_c >= presence_threshold,
        p_c=p_c,
        class_id=class_id,
        class_name=class_names[class_id],
        class_score=float(scores[class_id]),
        score=p_c * float(scores[class_id]),
        box=[float(v) for v in box],
        box_xyxy=[float(v) for v in corners],
        box_pixels=[float(v) for v in corners * np.float32([width, height, width, height])],
        image_size=(int(height), int(width)),
        class_scores=[float(v) for v in scores],
    )
