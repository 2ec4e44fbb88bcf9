"""Predict images with any locnet_tf model: one JSON line per image, optional pictures.

    python -m locnet_tf.predict export/latest/model_int8.tflite photo1.jpg photo2.png
    python -m locnet_tf.predict runs/latest/model.keras images/*.jpg --out predictions/

Each line holds the image path and the `locnet_tf.inference.Prediction`:
`present`, `p_c`, `class_id`, `class_name`, `class_score`, `score`, `box`
(`[b_x, b_y, b_h, b_w]` relative), `box_xyxy` (relative corners),
`box_pixels` (`[x1, y1, x2, y2]` in the image's pixels) and `image_size`.
With `--out DIR`, each image is also saved as `DIR/NAME.png` with its box,
class and score drawn.
"""

import argparse
import json
import pathlib
import sys

from locnet_tf import inference
from locnet_tf import plots


def predict_images(model, images, out=None, *, num_threads=None, resize=None, presence_threshold=None,
                   predictor=None):
    """Predicts image files and optionally saves them with the prediction drawn.

    Args:
        model: a `.keras` file, SavedModel folder or `.tflite` file (ignored
            when `predictor` is given).
        images: iterable of image paths.
        out: folder for the annotated pictures, or None for none.
        num_threads: int. LiteRT threads (TFLite models).
        resize: `"stretch"`, `"letterbox"` or None (the model's).
        presence_threshold: float or None (the model's).
        predictor: an existing `inference.Predictor` to reuse.

    Returns:
        list of dicts, one per image: `{"image": path, **Prediction.to_dict()}`
        plus `"picture"` (the saved PNG) when `out` is given.
    """
    return list(iter_predictions(
        model, images, out, num_threads=num_threads, resize=resize,
        presence_threshold=presence_threshold, predictor=predictor,
    ))


def iter_predictions(model, images, out=None, *, num_threads=None, resize=None, presence_threshold=None,
                     predictor=None):
    """`predict_images` as a generator: yields each image's dict as soon as it is known."""
    predictor = predictor or inference.Predictor(
        model, num_threads=num_threads, resize=resize, presence_threshold=presence_threshold
    )
    out = pathlib.Path(out) if out else None
    used_names = set()
    for path in images:
        image = inference.load_image(path)
        prediction = predictor.predict(image)
        row = {"image": str(path), **prediction.to_dict()}
        if out is not None:
            name = _unique_name(pathlib.Path(path).stem, used_names)
            row["picture"] = plots.draw_examples_grid(
                [image], [prediction.box], [prediction.class_id], predictor.class_names,
                out / f"{name}.png", present=[prediction.present], scores=[prediction.score],
                titles=[pathlib.Path(path).name], columns=1, cell_size=4.0,
            )
        yield row


def _unique_name(stem, used):
    # Two inputs named a/x.jpg and b/x.jpg must not overwrite one picture.
    name, index = stem, 1
    while name in used:
        index += 1
        name = f"{stem}_{index}"
    used.add(name)
    return name


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m locnet_tf.predict",
        description="Predict presence, class and box for images with a .keras, SavedModel or .tflite model.",
    )
    parser.add_argument("model", help="a .keras file, a SavedModel folder or a .tflite file")
    parser.add_argument("images", nargs="+", help="image files (JPEG, PNG, GIF, BMP)")
    parser.add_argument("--out", help="save each image with its prediction drawn into this folder")
    parser.add_argument("--threads", type=int, help="LiteRT threads for .tflite models")
    parser.add_argument("--resize", choices=("stretch", "letterbox"), help="default: the model's")
    parser.add_argument("--threshold", type=float, help="presence threshold (default: the model's)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    predictor = inference.Predictor(
        args.model, num_threads=args.threads, resize=args.resize, presence_threshold=args.threshold
    )
    for row in iter_predictions(None, args.images, args.out, predictor=predictor):
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    from locnet_tf import cli

    sys.exit(cli.run(main))
