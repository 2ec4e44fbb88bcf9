"""Steady answers over time for one object per frame: box smoothing and presence hysteresis.

    smoother = Smoother(presence_threshold=0.5)
    for frame in frames:
        steady = smoother.update(predictor.predict(frame.image), frame.timestamp)

Frame-by-frame predictions flicker: the box trembles by a few pixels and
`p_c` near the threshold turns the answer on and off. `Smoother` makes
the answer one would draw on a video:

- **Presence hysteresis.** The object appears after `enter_frames`
  consecutive frames with `p_c >= presence_threshold`, and disappears only
  after `exit_frames` consecutive frames with `p_c < exit_threshold` (lower
  than the presence threshold). Between the two thresholds the answer stays
  what it was.
- **Box smoothing** with the One Euro filter (Casiez, Roussel and Vogel, CHI
  2012; MediaPipe smooths landmarks with it): an exponential moving average of
  each of `b_x, b_y, b_h, b_w` whose weight on the newest frame grows with the
  box's speed, so a still object's box stops trembling and a moving one is
  followed without lag. `min_cutoff` (Hz) sets the smoothing at rest (lower is
  steadier), `beta` how fast it lets go when the box moves. Frames' own
  timestamps are used, so a stride or a dropped frame is accounted for.
  Hand-written: a few lines, where a package for it would be one more
  dependency on the device.
- **Class scores** are averaged (EMA, `class_alpha` on the newest frame), so a
  class that wins one frame by a hair does not switch the label.

`p_c` stays the frame's own; `present`, the box, the class and `score` are
the smoothed ones. `benchmarks/video_smoothing.py` measures the effect on a
generated video with known boxes (README, "Video and cameras").
"""

import dataclasses
import math

import numpy as np

from locnet_tf.core import geometry
from locnet_tf.runtime.prediction import Prediction


@dataclasses.dataclass(frozen=True)
class SmoothingConfig:
    """Settings of `Smoother`.

    The box defaults were chosen with `benchmarks/video_smoothing.py --seed 100`
    (min_cutoff 0.3-3 Hz x beta 0.3-10: beta 10 kept the box error and IoU of
    the raw answers while cutting the jitter about in half; lower values
    steadied more but lagged behind a moving object; enter 1-3 x exit 1-5
    frames: entering at once and leaving after 2 frames below the lower
    threshold flipped least); its figures in the README are from other clips
    (the default seed).

    min_cutoff: float. One Euro cutoff frequency at rest, in Hz.
    beta: float. Cutoff increase per unit of box speed (image sizes per second).
    derivative_cutoff: float. Cutoff (Hz) of the speed estimate itself.
    class_alpha: float. EMA weight of the newest frame's class scores.
    exit_threshold: float or None. `p_c` below which a present object counts
        as gone; None: half the presence threshold.
    enter_frames: int. Consecutive frames at or above the presence threshold
        before an object is reported.
    exit_frames: int. Consecutive frames below `exit_threshold` before it is
        no longer reported.
    """

    min_cutoff: float = 1.0
    beta: float = 10.0
    derivative_cutoff: float = 1.0
    class_alpha: float = 0.4
    exit_threshold: float = None
    enter_frames: int = 1
    exit_frames: int = 2


def _alpha(cutoff, dt):
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """The One Euro filter on a vector (each component filtered alike)."""

    def __init__(self, min_cutoff, beta, derivative_cutoff):
        self.min_cutoff, self.beta, self.derivative_cutoff = min_cutoff, beta, derivative_cutoff
        self.reset()

    def reset(self):
        self.value = self.speed = self.time = None

    def __call__(self, value, time):
        value = np.asarray(value, np.float64)
        if self.value is None:
            self.value, self.speed, self.time = value, np.zeros_like(value), time
            return value
        dt = max(time - self.time, 1e-6)
        speed = (value - self.value) / dt
        self.speed = self.speed + _alpha(self.derivative_cutoff, dt) * (speed - self.speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self.speed)
        self.value = self.value + _alpha(cutoff, dt) * (value - self.value)
        self.time = time
        return self.value


class Smoother:
    """Turns per-frame predictions of one stream into steady ones (see the module docstring).

    Args:
        presence_threshold: float. The model's presence threshold.
        class_names: list of str. The model's classes.
        config: `SmoothingConfig`.
    """

    def __init__(self, presence_threshold, class_names, config=SmoothingConfig()):
        self.threshold = float(presence_threshold)
        self.config = config
        self.exit_threshold = self.threshold / 2 if config.exit_threshold is None else float(config.exit_threshold)
        if self.exit_threshold > self.threshold:
            raise ValueError(f"exit_threshold {self.exit_threshold} is above the presence threshold {self.threshold}.")
        self.class_names = list(class_names)
        self.box_filter = OneEuroFilter(config.min_cutoff, config.beta, config.derivative_cutoff)
        self.reset()

    def reset(self):
        """Forgets the stream (call between unrelated videos)."""
        self.present = False
        self.streak = 0  # consecutive frames arguing for a change of `present`
        self.scores = None
        self.box_filter.reset()
        self.last_box = None

    def update(self, prediction, timestamp):
        """Feeds one frame's `Prediction` (made at `timestamp` seconds); returns the steady one."""
        config = self.config
        seen = prediction.p_c >= (self.exit_threshold if self.present else self.threshold)
        if seen == self.present:
            self.streak = 0
        else:
            self.streak += 1
            if self.streak >= (config.exit_frames if self.present else config.enter_frames):
                self.present, self.streak = seen, 0
                if seen:  # a new appearance: start from this frame, not from where it left
                    self.box_filter.reset()
                    self.scores = None
        if prediction.p_c >= self.exit_threshold:
            # Frames where the model sees something feed the box and the class.
            self.last_box = self.box_filter(prediction.box, timestamp)
            frame_scores = np.asarray(prediction.class_scores, np.float64)
            self.scores = (
                frame_scores
                if self.scores is None
                else (self.scores + config.class_alpha * (frame_scores - self.scores))
            )
        scores = self.scores
        box = self.last_box if self.last_box is not None else np.asarray(prediction.box, np.float64)
        class_id = int(np.argmax(scores)) if scores is not None else prediction.class_id
        class_score = float(scores[class_id]) if scores is not None else prediction.class_score
        height, width = prediction.image_size
        corners = np.stack(geometry.target_to_corners(np.asarray(box, np.float32)))
        return Prediction(
            present=bool(self.present),
            p_c=prediction.p_c,
            class_id=class_id,
            class_name=self.class_names[class_id],
            class_score=class_score,
            score=prediction.p_c * class_score,
            box=[float(v) for v in box],
            box_xyxy=[float(v) for v in corners],
            box_pixels=[float(v) for v in corners * np.float32([width, height, width, height])],
            image_size=prediction.image_size,
            class_scores=[float(v) for v in scores] if scores is not None else prediction.class_scores,
        )
