"""Drawing helpers: a grid of images with their boxes and class names.

Figures are made with `matplotlib.figure.Figure`, not pyplot: no display is
needed, nothing is registered with pyplot (no figure piles up in a long run),
and importing this module leaves the caller's matplotlib backend alone (a
notebook keeps its inline plots). A function given `path=None` returns the
Figure, which a notebook shows as the cell's result. Boxes are in the target
format `[b_x, b_y, b_h, b_w]`, relative to each image, so the same call draws
any image size.
"""

import math
import pathlib
import zlib

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from locnet_tf.core import outputs
from locnet_tf.core import geometry

_COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324")


def _corners(boxes):
    # Target boxes (..., 4) -> relative corners [x1, y1, x2, y2] (..., 4), float32.
    return np.stack(geometry.target_to_corners(np.asarray(boxes, np.float32)), axis=-1)


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
    figure, axes = _subplots(rows, columns, figsize=(cell_size * columns, cell_size * rows), squeeze=False)
    corners = _corners(boxes)
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
            axis.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=2))
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
    # Tagged, so that `python -m locnet_tf.data --grid` knows the file as its own and may replace it.
    return _save(figure, path, text=dict([outputs.GRID_TAG]))


def _subplots(nrows=1, ncols=1, *, figsize=None, squeeze=True):
    # pyplot.subplots without pyplot: a standalone Figure and its axes.
    figure = Figure(figsize=figsize)
    return figure, figure.subplots(nrows, ncols, squeeze=squeeze)


def _save(figure, path, text=None):
    """Saves `figure` as the PNG `path` (with `text`: extra PNG text chunks), or returns it when `path` is None."""
    if path is None:
        return figure
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with outputs.atomic_path(path) as partial:  # a full disk leaves no half-written picture
        figure.savefig(partial, dpi=100, metadata=text)
    return str(path)


# ----------------------------------------------------------------------------
# Training curves.

_CURVE_PANELS = (
    ("loss", ("loss",)),
    ("loss terms", ("pc_loss", "box_loss", "class_loss", "heatmap_loss", "vote_loss")),
    ("presence / localization", ("pc_accuracy", "loc_accuracy")),
    ("class accuracy / mean IoU", ("class_accuracy", "mean_iou")),
)


def training_curves(history, path=None):
    """Plots training and validation curves from a history dict (column -> list).

    Args:
        history: dict of lists, e.g. Keras `History.history` or history.csv read
            by columns; `val_` columns are drawn dashed beside their train twin.
        path: PNG path, or None to return the figure. An `image_size` column
            (progressive resizing) marks where the input size changes.
    """
    epochs = np.asarray(history.get("epoch", range(len(history.get("loss", [])))), float) + 1
    sizes = history.get("image_size", [])
    # Between epoch i and i + 1, where the input size changed.
    switches = [(epochs[i] + 0.5, sizes[i + 1]) for i in range(len(sizes) - 1) if sizes[i + 1] != sizes[i]]
    figure, axes = _subplots(1, len(_CURVE_PANELS), figsize=(4.2 * len(_CURVE_PANELS), 3.4))
    for axis, (title, keys) in zip(axes, _CURVE_PANELS):
        for x, size in switches:
            axis.axvline(x, color="grey", linestyle=":", label=f"{size:g} px from here")
        for i, key in enumerate(keys):
            colour = _COLORS[i]
            if key in history:
                axis.plot(epochs, history[key], color=colour, label=key)
            if "val_" + key in history:
                axis.plot(epochs, history["val_" + key], color=colour, linestyle="--", label="val " + key)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        if title.startswith("loss"):
            axis.set_yscale("log")
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:  # a panel whose columns the history lacks stays empty, unlabelled
            axis.legend(fontsize=7)
    figure.tight_layout()
    return _save(figure, path)


# ----------------------------------------------------------------------------
# Evaluation pictures.


def confusion_matrix(matrix, labels, path=None):
    """Confusion matrix (rows: truth, columns: answer), background included."""
    matrix = np.asarray(matrix)
    figure, axis = _subplots(figsize=(1.2 * len(labels) + 2, 1.1 * len(labels) + 1.5))
    shares = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (r, c), value in np.ndenumerate(matrix):
        axis.text(c, r, str(value), ha="center", va="center", color="white" if shares[r, c] > 0.5 else "black")
    axis.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("answer")
    axis.set_ylabel("truth")
    axis.set_title("confusion matrix")
    figure.tight_layout()
    return _save(figure, path)


def iou_histogram(ious, path=None):
    """Histogram of the IoU between predicted and true boxes (images with an object)."""
    ious = np.asarray(ious, float)
    figure, axis = _subplots(figsize=(5, 3.4))
    axis.hist(ious, bins=np.linspace(0, 1, 41), color=_COLORS[2])
    if len(ious):
        axis.axvline(ious.mean(), color="black", linestyle="--", label=f"mean {ious.mean():.3f}")
    axis.axvline(0.5, color=_COLORS[0], linestyle=":", label="0.5 (counts as found)")
    axis.set_xlabel("IoU")
    axis.set_ylabel("images")
    axis.set_title("box IoU, images with an object")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def presence_pr_curve(precision, recall, threshold_point=None, path=None):
    """Precision/recall curve of the presence score `p_c`.

    Args:
        precision, recall: arrays from `evaluate.report.presence_curve`.
        threshold_point: (precision, recall, threshold) marked on the curve.
    """
    figure, axis = _subplots(figsize=(4.5, 4))
    axis.plot(recall, precision, color=_COLORS[2])
    if threshold_point is not None:
        p, r, t = threshold_point
        axis.plot([r], [p], "o", color=_COLORS[0], label=f"threshold {t:.2f}")
        axis.legend(fontsize=8)
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_xlim(0, 1.02)
    axis.set_ylim(0, 1.02)
    axis.set_title("presence p_c: precision / recall")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return _save(figure, path)


def prediction_gallery(
    images,
    y_true,
    y_pred,
    class_names,
    threshold,
    indices,
    path=None,
    title=None,
    columns=4,
    others=None,
    other_iou=None,
):
    """Predictions against ground truth: truth in green, answer in red with class and score.

    Args:
        images: uint8 images `(N, H, W, 3)`.
        y_true, y_pred: target vectors `(N, 5 + K)`.
        class_names: list of str.
        threshold: presence threshold (the answer is "background" below it).
        indices: which images to draw.
        others: None, or per image its other labelled objects as `(class_id, box)`
            pairs (`Record.others`, on the model input): drawn dashed green.
        other_iou: None, or per image the answer's IoU with another labelled
            object of the class it names (`evaluate.report.other_object_iou`):
            the title gives it where it is higher than the IoU with the target.
    """
    count = len(indices)
    columns = min(columns, count)
    rows = int(math.ceil(count / columns))
    figure, axes = _subplots(rows, columns, figsize=(2.8 * columns, 3.0 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, i in zip(axes.flat, indices):
        image = images[i]
        height, width = image.shape[:2]
        axis.imshow(image)
        true, pred = y_true[i], y_pred[i]
        parts = []
        if true[0] > 0.5:
            x1, y1, x2, y2 = _corners(true[1:5]) * [width, height, width, height]
            axis.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="#3cb44b", linewidth=2))
            parts.append(f"truth {class_names[int(np.argmax(true[5:]))]}")
        else:
            parts.append("truth background")
        for _, box in others[i] if others is not None else ():
            x1, y1, x2, y2 = _corners(np.asarray(box)) * [width, height, width, height]
            axis.add_patch(
                Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="#3cb44b", linewidth=1, linestyle="--")
            )
        if pred[0] >= threshold:
            x1, y1, x2, y2 = _corners(pred[1:5]) * [width, height, width, height]
            axis.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="#e6194b", linewidth=2))
            name = class_names[int(np.argmax(pred[5:]))]
            axis.text(
                x1,
                y1,
                f"{name} {pred[0] * pred[5:].max():.2f}",
                color="white",
                fontsize=7,
                va="bottom",
                bbox=dict(facecolor="#e6194b", alpha=0.8, pad=1, linewidth=0),
            )
            parts.append(f"said {name}")
        else:
            parts.append(f"said background (p_c {pred[0]:.2f})")
        if true[0] > 0.5:
            iou = float(geometry.iou(true[None, 1:5], pred[None, 1:5])[0])
            parts.append(f"IoU {iou:.2f}")
            if other_iou is not None and other_iou[i] > iou:
                parts[-1] += f", {other_iou[i]:.2f} with another {class_names[int(np.argmax(pred[5:]))]}"
        axis.set_title("\n".join(parts), fontsize=7)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return _save(figure, path)
