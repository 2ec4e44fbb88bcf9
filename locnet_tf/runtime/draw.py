"""Draw a prediction on its image with Pillow (no matplotlib, no TensorFlow).

    picture = annotate(image, prediction)          # uint8 [H, W, 3], box and label drawn
    save_picture(image, prediction, "out/photo.png")

Used for `predict --out` pictures and annotated videos, on a device too, so
only Pillow draws: `locnet_tf.core.figures` (matplotlib) stays for the notebooks'
figures. The box is `Prediction.box_pixels`; the label is the class name and
the score, or "no object" with `p_c` when nothing is present.
"""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from locnet_tf.core import outputs

# The plots' palette (locnet_tf.core.figures), one colour per class id.
COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324")
# Pictures smaller than this (short side, pixels) are enlarged before drawing,
# so that a 64 px image still has a readable label.
MIN_PICTURE_SIDE = 256


def _font(size):
    try:
        return ImageFont.load_default(size=size)  # a scalable font (Pillow >= 10.1 with FreeType)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def label(prediction):
    """The text drawn for a prediction."""
    if prediction.present:
        return f"{prediction.class_name} {prediction.score:.2f}"
    return f"no object (p_c {prediction.p_c:.2f})"


def annotate(image, prediction, *, scale=1, extra=None):
    """Returns a copy of `image` with the prediction's box and label drawn.

    Args:
        image: uint8 `[H, W, 3]`, the image `prediction` was made on.
        prediction: a `locnet_tf.runtime.Prediction`.
        scale: int. Enlarge the picture this many times first (nearest
            neighbour), e.g. for small images.
        extra: str or None. A second line of text (e.g. the frame time).

    Returns:
        uint8 `[H * scale, W * scale, 3]`.
    """
    picture = Image.fromarray(np.asarray(image, np.uint8))
    if scale != 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(picture)
    side = min(picture.size)
    width = max(2, side // 160)
    font = _font(max(12, side // 24))
    color = COLORS[prediction.class_id % len(COLORS)] if prediction.present else "#ffffff"
    text = label(prediction) + (f"\n{extra}" if extra else "")
    if prediction.present:
        x1, y1, x2, y2 = (v * scale for v in prediction.box_pixels)
        draw.rectangle([x1, y1, x2, y2], outline=color, width=width)
        anchor = (max(0.0, x1), max(0.0, y1 - width))
        bottom = True
    else:
        anchor, bottom = (width, width), False
    left, top, right, low = draw.multiline_textbbox(anchor, text, font=font, anchor="ld" if bottom else "la")
    if bottom and top < 0:  # no room above the box: write inside it
        left, top, right, low = draw.multiline_textbbox((anchor[0], anchor[1] + width), text, font=font, anchor="la")
        anchor, bottom = (anchor[0], anchor[1] + width), False
    draw.rectangle([left - 2, top - 2, right + 2, low + 2], fill="#000000")
    draw.multiline_text(anchor, text, fill=color, font=font, anchor="ld" if bottom else "la")
    return np.asarray(picture)


def picture_scale(height, width):
    """How many times `annotate` should enlarge a still image of this size."""
    return max(1, -(-MIN_PICTURE_SIDE // max(1, min(height, width))))


def save_picture(image, prediction, path, extra=None):
    """Saves `image` with its prediction drawn (PNG or JPEG by suffix); returns the path."""
    image = np.asarray(image)
    scale = picture_scale(*image.shape[:2])
    picture = Image.fromarray(annotate(image, prediction, scale=scale, extra=extra))
    with outputs.atomic_path(path) as partial:  # a full disk leaves no half-written picture
        picture.save(partial)
    return str(path)
