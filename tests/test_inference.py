"""Predictor: the same decoded answer from .keras, SavedModel and .tflite."""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from locnet_tf.evaluate import predictor as inference
from locnet_tf.core import geometry
from locnet_tf.model import target as target_lib
from locnet_tf.data import pipeline
from helpers import SMOKE_IMAGE_SIZE as IMAGE_SIZE
from helpers import SMOKE_SPEC as SPEC


@pytest.fixture(scope="module")
def photos(smoke):
    """Test images of several sizes and aspect ratios (uint8), with their targets."""
    dataset, _ = pipeline.examples(SPEC, "test", data_dir=smoke["data_dir"])
    images = [ex["image"].numpy() for ex in dataset.take(6)]
    sizes = [(64, 64), (100, 80), (48, 150), (200, 200), (37, 53), (64, 64)]
    return [tf.image.resize(img, size).numpy().round().astype(np.uint8) for img, size in zip(images, sizes)]


def _model_paths(smoke):
    out = smoke["export"]
    return {
        "keras": smoke["model"],
        "saved_model": out / "saved_model",
        **{q: out / f"model_{q}.tflite" for q in ("float32", "float16", "dynamic", "int8")},
    }


def test_preprocess_is_the_pipeline_resize():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)
    for method in ("stretch", "letterbox"):
        expected = pipeline.resize({"image": image, "box": np.zeros(4, np.float32), "present": False}, 32, method)[
            "image"
        ]
        np.testing.assert_array_equal(inference.preprocess(image, 32, method).numpy(), expected)
    batch = np.stack([image, image[::-1]])
    np.testing.assert_array_equal(
        inference.preprocess_batch(batch, 32, "stretch")[1], inference.preprocess(image[::-1], 32, "stretch")
    )


def test_boxes_to_original_undoes_the_letterbox():
    # A 40 (h) x 80 (w) image letterboxed to 32: scale 0.4 -> 16 x 32, 8 rows of padding on top.
    box = np.array([0.25, 0.5, 0.5, 0.25], np.float32)  # b_x, b_y, b_h, b_w
    example = {"image": np.zeros((40, 80, 3), np.uint8), "box": box, "present": True}
    moved = pipeline.resize(example, 32, "letterbox")["box"].numpy()
    # b_y' = (8 + 0.5 * 16) / 32 = 0.5; b_h' = 0.5 * 16 / 32 = 0.25; x unchanged.
    np.testing.assert_allclose(moved, [0.25, 0.5, 0.25, 0.25], atol=1e-6)
    back = geometry.boxes_to_original_tf(moved, 40, 80, 32, "letterbox").numpy()
    np.testing.assert_allclose(back, box, atol=1e-6)
    np.testing.assert_array_equal(geometry.boxes_to_original_tf(box, 40, 80, 32, "stretch"), box)


def test_outputs_round_trip():
    y = np.array([[0.9, 0.5, 0.4, 0.2, 0.6, 0.1, 0.7, 0.2]], np.float32)
    out = {k: np.asarray(v) for k, v in target_lib.vector_to_outputs(y).items()}
    assert out["class_id"].tolist() == [1]
    # x1 = 0.5 - 0.6 / 2 = 0.2, y1 = 0.4 - 0.2 / 2 = 0.3, x2 = 0.8, y2 = 0.5
    np.testing.assert_allclose(out["box_xyxy"], [[0.2, 0.3, 0.8, 0.5]], atol=1e-6)
    np.testing.assert_array_equal(target_lib.outputs_to_vector(out), y)


def test_one_predictor_for_evaluation_files_and_a_model_in_memory(smoke, photos):
    # What evaluation reads of any model: the same attributes and the same (B, 5 + K) vectors
    # from the .keras file, its exports and the Keras model in memory.
    import keras

    model = keras.models.load_model(smoke["model"])
    in_memory = inference.Predictor(model)
    assert (in_memory.path, in_memory.kind, in_memory.image_size) == (None, "keras", IMAGE_SIZE)
    assert in_memory.class_names == ["pedestrian", "car", "motorcycle"]
    assert in_memory.resize == "stretch"  # recorded in the model
    images = np.stack(
        [
            pipeline.resize({"image": image, "box": np.zeros(4, np.float32), "present": False}, IMAGE_SIZE)[
                "image"
            ].numpy()
            for image in photos
        ]
    ).astype(np.float32)
    vectors = in_memory(images)
    assert vectors.shape == (len(photos), 5 + 3) and vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors, model.predict_on_batch(images))
    for name, atol in (("keras", 1e-5), ("saved_model", 1e-4), ("float32", 1e-4), ("int8", 5e-2)):
        predictor = inference.Predictor(_model_paths(smoke)[name], num_threads=1)
        assert predictor.path is not None and predictor.presence_threshold == pytest.approx(
            in_memory.presence_threshold
        )
        np.testing.assert_allclose(predictor(images)[:, :5], vectors[:, :5], atol=atol, err_msg=name)
    # A model in memory predicts one picture as its file does.
    reference = inference.Predictor(smoke["model"], num_threads=1).predict(photos[1])
    np.testing.assert_allclose(in_memory.predict(photos[1]).box, reference.box, atol=1e-5)
    # Anything else is one clear TypeError, not an AttributeError from deep inside.
    with pytest.raises(TypeError, match="a model file or folder .* or a Keras model, not NoneType"):
        inference.Predictor(None)


def test_predictor_kinds_agree(smoke, photos):
    predictors = {name: inference.Predictor(path, num_threads=1) for name, path in _model_paths(smoke).items()}
    assert predictors["keras"].kind == "keras"
    assert predictors["saved_model"].kind == "saved_model"
    assert predictors["int8"].kind == "tflite"
    for predictor in predictors.values():
        assert predictor.class_names == ["pedestrian", "car", "motorcycle"]
        assert predictor.image_size == IMAGE_SIZE
    for image in photos:
        reference = predictors["keras"].predict(image)
        assert reference.image_size == image.shape[:2]
        # box_pixels = box_xyxy * [W, H, W, H]
        h, w = image.shape[:2]
        np.testing.assert_allclose(reference.box_pixels, np.multiply(reference.box_xyxy, [w, h, w, h]), rtol=1e-6)
        for name in ("saved_model", "float32"):
            got = predictors[name].predict(image)
            assert (got.present, got.class_id, got.class_name) == (
                reference.present,
                reference.class_id,
                reference.class_name,
            ), name
            np.testing.assert_allclose(got.box, reference.box, atol=1e-4, err_msg=name)
            np.testing.assert_allclose(got.box_pixels, reference.box_pixels, atol=0.05, err_msg=name)
            assert got.score == pytest.approx(reference.score, abs=1e-4)
        for name, atol in (("float16", 5e-3), ("dynamic", 2e-2), ("int8", 5e-2)):
            got = predictors[name].predict(image)
            np.testing.assert_allclose(got.box, reference.box, atol=atol, err_msg=name)
            assert got.p_c == pytest.approx(reference.p_c, abs=atol), name


def test_predictor_thread_count_and_paths(smoke, photos, tmp_path):
    path = _model_paths(smoke)["int8"]
    one = inference.Predictor(path, num_threads=1).predict(photos[1])
    two = inference.Predictor(path, num_threads=2).predict(photos[1])
    assert one == two
    # A path works as well as an array; the dict form is JSON-ready.
    file = tmp_path / "photo.png"
    tf.io.write_file(str(file), tf.io.encode_png(photos[1]))
    from_file = inference.Predictor(path, num_threads=1).predict(file)
    assert from_file == one
    assert json.loads(json.dumps(one.to_dict()))["image_size"] == [100, 80]


def test_letterbox_predictor_maps_boxes_back(smoke, photos):
    predictor = inference.Predictor(smoke["model"], resize="letterbox")
    image = photos[2]  # 48 x 150
    got = predictor.predict(image)
    raw = predictor.raw(inference.preprocess(image, IMAGE_SIZE, "letterbox").numpy()[None])
    expected = geometry.boxes_to_original_tf(raw["box"], 48, 150, IMAGE_SIZE, "letterbox").numpy()[0]
    np.testing.assert_allclose(got.box, expected, atol=1e-6)
    assert not np.allclose(got.box, raw["box"][0], atol=1e-3)  # the padding was really undone


def test_a_lone_tflite_file_knows_its_classes(smoke, tmp_path, photos):
    # The metadata is inside the file (tests/test_runtime.py covers files without it).
    lone = tmp_path / "model.tflite"
    shutil.copy(_model_paths(smoke)["float32"], lone)
    predictor = inference.Predictor(lone)
    assert predictor.class_names == ["pedestrian", "car", "motorcycle"]
    assert predictor.presence_threshold == smoke["metadata"]["presence_threshold"]
    renamed = inference.Predictor(lone, class_names=["a", "b", "c"], presence_threshold=0.0)
    result = renamed.predict(photos[0])
    assert result.present and result.class_name in ("a", "b", "c")


def test_bad_model_paths(tmp_path):
    with pytest.raises(FileNotFoundError):
        inference.Predictor(tmp_path / "missing.keras")
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match="expected a .keras file"):
        inference.Predictor(tmp_path / "model.onnx")
    with pytest.raises(ValueError, match="not a SavedModel"):
        inference.Predictor(tmp_path)


def test_letterbox_saved_model_agrees_with_the_letterbox_predictor(smoke, photos, tmp_path):
    import keras

    from locnet_tf.export import convert

    model = keras.models.load_model(smoke["model"])
    saved = tmp_path / "saved_model"
    convert.write_saved_model(model, saved, resize="letterbox")
    metadata = json.loads((smoke["export"] / "metadata.json").read_text()) | {"resize": "letterbox"}
    (saved / "assets.extra").mkdir()
    (saved / "assets.extra" / "metadata.json").write_text(json.dumps(metadata))
    from_graph = inference.Predictor(saved)
    assert from_graph.resize == "letterbox"
    with pytest.raises(ValueError, match="resizes with 'letterbox' inside its graph"):
        inference.Predictor(saved, resize="stretch")
    reference = inference.Predictor(smoke["model"], resize="letterbox")
    for image in photos[1:4]:
        got, expected = from_graph.predict(image), reference.predict(image)
        np.testing.assert_allclose(got.box, expected.box, atol=1e-5)
        np.testing.assert_allclose(got.box_xyxy, expected.box_xyxy, atol=1e-5)
        assert got.class_id == expected.class_id and got.p_c == pytest.approx(expected.p_c, abs=1e-5)


def test_keras_model_in_a_run_folder_uses_the_runs_resize(tmp_path):
    # A model saved before models recorded their resize (0.2.0): its run's config.json says.
    # (A model that records it wins over config.json: tests/test_self_describing.py.)
    from locnet_tf.core import config as config_lib
    from locnet_tf.evaluate import predictor as inference
    from locnet_tf.model import network as model_lib

    model = model_lib.build_model(image_size=32, filters=(4, 4, 4, 4), depths=(1, 1, 1), head_units=8)
    model_lib.target_layer(model).resize = None
    model.save(tmp_path / "model.keras")
    assert inference.Predictor(tmp_path / "model.keras").resize == "stretch"
    config_lib.preset("smoke", resize="letterbox").save(tmp_path / "config.json")
    assert inference.Predictor(tmp_path / "model.keras").resize == "letterbox"
