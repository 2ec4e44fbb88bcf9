"""Drawing helpers: a grid of images with their boxes and class names.

Matplotlib with the Agg backend (no display needed). Boxes are in the target
format `[b_x, b_y, b_h, b_w]`, relative to each image, so the same call draws
any image size.
"""

import math
import pathlib
import zlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from locnet_tf import boxes as box_lib  # noqa: E402

_COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324")


def _as_display_image(image):
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype != np.uint8:
        image = image.astype(np.float32)
        image = np.clip(image / 255.0 if image.max() > 1.0 else image, 0.0, 1.0)
    return image


def draw_examples_grid(
    images,
    boxes,
    class_ids,
    class_names,
    path=None,
    *,
    present=None,
    scores=None,
    titles=None,
    columns=None,
    cell_size=2.5,
    title=None,
):
    """Draws images with their box and class name in a grid; saves a PNG.

    Args:
        images: sequence of images, `HxWx3` or `HxW` (uint8 0..255, or floats
            in 0..1 or 0..255). Sizes may differ.
        boxes: `(N, 4)` boxes in the target format `[b_x, b_y, b_h, b_w]`,
            relative to each image.
        class_ids: N class ids (ints indexing `class_names`) or label strings.
        class_names: sequence of str, the class names (may be None when
            `class_ids` are strings).
        path: str or Path. Where to save the PNG; None returns the figure
            instead (e.g. to show it in a notebook).
        present: N bools; a False entry is drawn without a box and captioned
            "background". Default: all present.
        scores: N floats shown beside the class name (e.g. `p_c`), or None.
        titles: N extra strings appended to each caption (e.g. file names).
        columns: int. Grid width; default about sqrt(N), at most 8.
        cell_size: float. Size of one cell in inches.
        title: str. A title above the grid.

    Returns:
        The saved path as a str when `path` is given, else the matplotlib Figure.
    """
    count = len(images)
    if count == 0:
        raise ValueError("draw_examples_grid needs at least one image.")
    boxes = np.asarray(boxes, dtype=np.float32).reshape(count, 4)
    present = np.ones(count, bool) if present is None else np.asarray(present, bool).reshape(count)
    columns = columns or min(8, math.ceil(math.sqrt(count)))
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(cell_size * columns, cell_size * rows), squeeze=False
    )
    corners = np.asarray(box_lib.from_target(boxes, "rel_xyxy"))
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= count:
            continue
        image = _as_display_image(images[index])
        height, width = image.shape[:2]
        if image.ndim == 2:
            axis.imshow(image, cmap="gray", vmin=0, vmax=255 if image.dtype == np.uint8 else 1)
        else:
            axis.imshow(image)
        label = class_ids[index]
        if isinstance(label, (str, bytes)):
            name = label.decode() if isinstance(label, bytes) else label
            color = _COLORS[zlib.crc32(name.encode()) % len(_COLORS)]
        else:
            class_id = int(label)
            name = class_names[class_id] if class_names is not None else str(class_id)
            color = _COLORS[class_id % len(_COLORS)]
        if present[index]:
            x1, y1, x2, y2 = corners[index] * [width, height, width, height]
            axis.add_patch(
                plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=2)
            )
            caption = name
        else:
            caption, color = "background", "black"
        if scores is not None:
            caption += f" {float(scores[index]):.2f}"
        if titles is not None:
            caption += f"\n{titles[index]}"
        axis.set_title(caption, fontsize=8, color=color)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    if path is None:
        return figure
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return str(path)
