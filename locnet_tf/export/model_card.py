"""Export, step three: what an export says about itself.

tflite_file_metadata(...)   embedded in each .tflite (`locnet_tf.runtime.metadata`)
export_metadata(...)        metadata.json: classes, input, box format, threshold,
                            source hash, every file's sha256, the parity report
write_text_files(work, m)   metadata.json, parity.json, labels.txt, README.md
model_card(metadata)        the README.md: a short Markdown model card
"""

import dataclasses
import datetime
import json

from locnet_tf.evaluate import predictor as inference
from locnet_tf.runtime import tflite as runtime
from locnet_tf.model import network as model_lib

sha256 = runtime.sha256  # hex SHA-256 of a file

BOX_FORMAT = {
    "box": "[b_x, b_y, b_h, b_w] centre, height, width; relative to the image",
    "box_xyxy": "[x1, y1, x2, y2] relative to the image",
}


def tflite_file_metadata(model, model_path, resize, quantization):
    """What a `.tflite` file carries about itself (`locnet_tf.runtime.metadata`).

    Enough to use the file alone: classes, presence threshold, input size and
    dtype, resize method, box format, and the source model's SHA-256 (which
    `metadata.json` also records, so the two can be matched).
    """
    image_size = int(model.input_shape[1])
    return {
        "model_name": model.name,
        "source_sha256": sha256(model_path),
        "classes": model_lib.class_names(model),
        "presence_threshold": model_lib.presence_threshold(model),
        "input": {
            "name": "images",
            "size": image_size,
            "shape": [1, image_size, image_size, 3],
            "dtype": "uint8" if quantization == "int8" else "float32",
            "pixel_range": [0, 255],
            "normalisation": "inside the model",
        },
        "resize": resize,
        "quantization": quantization,
        "box_format": dict(BOX_FORMAT),
        "outputs": list(inference.OUTPUT_NAMES),
    }


def export_metadata(
    model_path, model, settings, split, count, formats, files, work, calibration_used, gates, parity, export_config=None
):
    """metadata.json's content; `export_config`: the resolved `ExportConfig` as a dict, recorded as it is."""
    image_size = int(model.input_shape[1])
    artifacts = {}
    if "saved_model" in formats:
        size = sum(p.stat().st_size for p in (work / "saved_model").rglob("*") if p.is_file())
        artifacts["saved_model"] = {
            "path": "saved_model",
            "bytes": size,
            "signatures": {
                "serving_default": {
                    "input": "images",
                    "dtype": "uint8",
                    "shape": [None, None, None, 3],
                    "note": f"any size, resized inside ({settings['resize']})",
                },
                "serving_fixed": {
                    "input": "images",
                    "dtype": "float32",
                    "shape": [None, image_size, image_size, 3],
                    "note": "0..255",
                },
                "serving_encoded": {
                    "input": "encoded_images",
                    "dtype": "string",
                    "shape": [None],
                    "note": f"JPEG/PNG/GIF/BMP file bytes, decoded and resized inside ({settings['resize']}); "
                    "EXIF orientation not applied",
                },
            },
        }
    for name, quantization in files.items():
        artifacts[f"tflite_{quantization}"] = {
            "path": name,
            "bytes": (work / name).stat().st_size,
            "sha256": sha256(work / name),
            "quantization": quantization,
            "signature": "serving_default",
            "input": "images",
            "dtype": "uint8" if quantization == "int8" else "float32",
            "shape": [1, image_size, image_size, 3],
        }
    return {
        # 2: each .tflite carries its metadata inside and is listed here with its sha256.
        "format_version": 2,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model_name": model.name,
        "source_model": str(model_path),
        "source_sha256": sha256(model_path),
        "classes": model_lib.class_names(model),
        "presence_threshold": model_lib.presence_threshold(model),
        "input": {
            "size": image_size,
            "shape": [image_size, image_size, 3],
            "pixel_range": [0, 255],
            "normalisation": "inside the model",
        },
        "resize": settings["resize"],
        "build_arguments": _build_record(model),
        "target_vector": ["p_c", "b_x", "b_y", "b_h", "b_w"] + [f"c_{n}" for n in model_lib.class_names(model)],
        "box_format": dict(BOX_FORMAT),
        "outputs": list(inference.OUTPUT_NAMES),
        "artifacts": artifacts,
        "calibration": {"split": "train", "samples": calibration_used} if calibration_used else None,
        "parity": {
            "data": settings["data"],
            "split": split,
            "images": int(count),
            "gates": dataclasses.asdict(gates),
            "results": parity,
        },
        "export_config": export_config,
    }


def _build_record(model):
    """The architecture the model records (`model.build_arguments`, without what metadata.json says
    elsewhere), or None for a model saved by locnet_tf 0.2.0 or earlier."""
    arguments = model_lib.build_arguments(model)
    if arguments is None:
        return None
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in arguments.items()
        if key not in ("class_names", "presence_threshold", "resize")
    }


def write_text_files(work, metadata):
    (work / inference.METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
    (work / "parity.json").write_text(json.dumps(metadata["parity"], indent=2) + "\n")
    (work / "labels.txt").write_text("".join(f"{name}\n" for name in metadata["classes"]))
    (work / "README.md").write_text(model_card(metadata))


def _network_line(build):
    """The model card's line on the network (`build_model`'s arguments); nothing for a model that records none."""
    if not build:
        return ""
    shown = ", ".join(
        f"{key} {','.join(map(str, value)) if isinstance(value, list) else value}"
        for key, value in build.items()
        if key not in ("image_size", "name", "size_scale") and value is not None
    )
    return f"- **Network**: `locnet_tf.model.build_model` with {shown}.\n"


def model_card(metadata):
    """A short Markdown model card generated from the metadata."""
    parity = metadata["parity"]
    size = metadata["input"]["size"]
    rows = "\n".join(
        f"| `{a['path']}` | {a['bytes'] / 1e6:.2f} MB | {a.get('quantization', 'float32')} |"
        for a in metadata["artifacts"].values()
    )
    checks = "\n".join(
        f"| {name} | {max(r['max_abs_diff'].values()):.2e} | {r['pc_agreement']:.4f} | "
        f"{r['class_agreement']:.4f} | {r['box_iou']:.4f} | {r['loc_accuracy']:.4f} |"
        for name, r in parity["results"].items()
    )
    first_tflite = next((a["path"] for a in metadata["artifacts"].values() if a["path"].endswith(".tflite")), None)
    usage = first_tflite or "saved_model"
    network = _network_line(metadata.get("build_arguments"))
    return f"""# {metadata["model_name"]}: single-object classification with localization

Exported by `locnet_tf.export` on {metadata["created"]} from `{metadata["source_model"]}`
(sha256 `{metadata["source_sha256"][:16]}...`).

- **Classes** ({len(metadata["classes"])}): {", ".join(metadata["classes"])} (also in `labels.txt`).
- **Input**: RGB {size}x{size}, pixels 0..255 (normalisation is inside the model). Resize
  other sizes with `{metadata["resize"]}`; the SavedModel's `serving_default` does it for you.
{network}- **Outputs** (named): `p_c` presence probability; `box` = `[b_x, b_y, b_h, b_w]` (centre,
  then height before width, relative to the image); `box_xyxy` relative corners; `class_id`;
  `class_scores`. An object is reported when `p_c >= {metadata["presence_threshold"]:g}`.

## Files

| file | size | weights |
| --- | --- | --- |
{rows}

## Parity with the Keras model

On {parity["images"]} images of `{parity["data"]}` ({parity["split"]} split).

| format | max abs diff | p_c agreement | class agreement | box IoU vs Keras | loc accuracy |
| --- | --- | --- | --- | --- | --- |
{checks}

## Use

```python
from locnet_tf.evaluate.predictor import Predictor
result = Predictor("{usage}").predict("image.jpg")
print(result.present, result.class_name, result.score, result.box_pixels)
```
"""
