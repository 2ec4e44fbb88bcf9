"""A generated video of one synthetic object moving across a scene, with its true box in every frame.

    truth = write_clip("clip.mp4", count=300, size=(256, 256), fps=30, class_id=1, seed=0)
    truth[i]  # {"present": bool, "box": [b_x, b_y, b_h, b_w] relative (zeros when absent)}

What the benchmarks and tests run videos on, with nothing downloaded: the
scene and the object are drawn by the `synthetic_road` generator
(`locnet_tf.data.builtin.synthetic`: its backgrounds, lighting and object drawings),
the object crosses the frame from left to right while bobbing and growing
(as if approaching), leaves it, and the clip ends on some frames of background.
Fresh sensor noise in every frame makes it a camera-like signal, so a model's
answers wobble from frame to frame as they would on a real video.

The truth follows the dataset's rules: the box is tight around the object's
visible pixels inside the frame, and an object with less than 40% of its
pixels in view counts as absent (as augmentation's `min_visible`).
"""

import numpy as np
from PIL import Image

from locnet_tf.core import geometry
from locnet_tf.data.builtin import synthetic_draw

MIN_VISIBLE = 0.4  # as locnet_tf.data.pipeline.AugmentConfig.min_visible


def _object(rng, class_id, height):
    # The generator draws objects at random sizes; scale its drawing to `height` px.
    canvas = synthetic_draw._draw_object(rng, class_id, 256)
    scale = height / canvas.height
    size = (max(2, round(canvas.width * scale)), max(2, round(canvas.height * scale)))
    return canvas.resize(size, Image.NEAREST)  # nearest keeps the alpha mask hard, so boxes stay exact


def frames(count=120, size=(128, 128), class_id=1, seed=0, object_size=0.4, absent_share=0.2):
    """Yields `(uint8 [H, W, 3] frame, truth dict)` for each frame of the clip.

    Args:
        count: int. Number of frames.
        size: (height, width) in pixels.
        class_id: int. The object's class (`synthetic_draw.CLASS_NAMES`).
        seed: int. The same seed gives the same clip.
        object_size: float. The object's height at the start, as a fraction of
            the frame height (it grows by half over the crossing).
        absent_share: float. Share of the frames, at the end, after the object
            has left.
    """
    height, width = size
    rng = np.random.default_rng(seed)
    side = max(height, width)
    background = synthetic_draw._BACKGROUNDS[int(rng.integers(2))](rng, side)  # a road scene
    background = synthetic_draw._lighting(rng, background)
    top, left = (side - height) // 2, (side - width) // 2
    background = background[top : top + height, left : left + width]
    base = _object(rng, int(class_id), object_size * height)
    crossing = max(2, int(round(count * (1.0 - absent_share))))
    noise = float(rng.uniform(3.0, 6.0))
    for i in range(count):
        t = min(i / (crossing - 1), 1.0) if i < crossing else None
        frame = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
        truth = {"present": False, "box": [0.0, 0.0, 0.0, 0.0]}
        if t is not None:
            grow = 1.0 + 0.5 * t
            canvas = base.resize((max(2, round(base.width * grow)), max(2, round(base.height * grow))), Image.NEAREST)
            # From half out on the left to half out on the right; bobbing up and down.
            cx = -0.1 * width + t * 1.2 * width
            cy = height * (0.55 + 0.08 * np.sin(2 * np.pi * i / 45.0))
            x0, y0 = int(round(cx - canvas.width / 2)), int(round(cy - canvas.height / 2))
            frame.paste(canvas, (x0, y0), canvas)
            layer = Image.new("L", (width, height), 0)
            layer.paste(canvas.getchannel("A"), (x0, y0))
            mask = np.asarray(layer) > 0
            total = int((np.asarray(canvas.getchannel("A")) > 0).sum())
            if mask.sum() >= MIN_VISIBLE * total and mask.any():
                rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
                # Pixel i covers [i, i + 1): hence the + 1 on the far edges.
                x1, x2, y1, y2 = cols[0] / width, (cols[-1] + 1) / width, rows[0] / height, (rows[-1] + 1) / height
                truth = {"present": True, "box": list(geometry.corners_to_target(x1, y1, x2, y2))}
        pixels = np.asarray(frame, np.float32) + rng.standard_normal((height, width, 3), dtype=np.float32) * noise
        yield np.clip(np.round(pixels), 0, 255).astype(np.uint8), truth


def write_clip(path, count=120, size=(128, 128), fps=30, **options):
    """Writes the clip as H.264 `.mp4` (`locnet_tf.runtime.video_writer.VideoWriter`); returns the per-frame truth.

    `options` are `frames`'s (`class_id`, `seed`, `object_size`, `absent_share`).
    """
    from locnet_tf.runtime import video_writer

    truth = []
    with video_writer.VideoWriter(path, fps, crf=18) as writer:
        for image, row in frames(count, size, **options):
            writer.write(image)
            truth.append(row)
    return truth
