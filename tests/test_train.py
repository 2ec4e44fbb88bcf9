"""Training and evaluation: run folder, resume, report numbers, tf.distribute."""

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from locnet_tf.core import config as config_lib
from locnet_tf.evaluate import run as evaluate_lib
from locnet_tf.evaluate import __main__ as evaluate_main
from locnet_tf.evaluate import calibration as calibration_lib
from locnet_tf.evaluate import report as report_lib
from locnet_tf.core import runs
from locnet_tf.train import run as train_lib
from locnet_tf.train import __main__ as train_main
from locnet_tf.data import pipeline

from conftest import REPO
from helpers import numpy_report


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("run")
    config = config_lib.preset("smoke", data_dir=data_dir)
    result = train_lib.train(config, out=str(out), verbose=0)
    return out, config, result


def test_smoke_run_writes_a_complete_run_folder(smoke_run):
    out, config, result = smoke_run
    for name in ("config.json", "model.keras", "history.csv", "curves.png", "report.json"):
        assert (out / name).is_file(), name
    for name in (
        "confusion_matrix.png",
        "iou_histogram.png",
        "presence_pr_curve.png",
        "gallery_best.png",
        "gallery_worst.png",
    ):
        assert (out / "eval" / name).stat().st_size > 1000, name
    assert any((out / "logs").rglob("events.out.tfevents.*")), "no TensorBoard logs"
    assert not (out / "backup").exists(), "backup state must be removed after a finished run"
    assert config_lib.Config.load(out / "config.json") == config
    history = result["history"]
    assert history["epoch"] == [0.0, 1.0]
    for key in (
        "loss",
        "pc_loss",
        "box_loss",
        "class_loss",
        "heatmap_loss",
        "vote_loss",
        "val_loc_accuracy",
        "val_mean_iou",
        "val_score",  # what the checkpoint keeps the best epoch by (runs.SELECTION)
    ):
        assert all(np.isfinite(history[key])), key
    report = json.loads((out / "report.json").read_text())
    for key in report_lib.REPORT_KEYS:
        assert 0.0 <= report[key] <= 1.0
    assert report["counts"]["images"] == report["counts"]["positives"] + report["counts"]["background"] > 0
    model = keras.models.load_model(out / "model.keras")
    assert report["threshold"] == pytest.approx(train_lib.model_lib.presence_threshold(model))
    # Trained through the MapSupervision wrapper, saved as the plain model.
    assert model.name == "locnet" and model.output_shape == (None, 8)


def test_map_supervision_only_where_there_is_a_map_and_the_default_loss():
    assert train_lib.map_supervised(config_lib.preset("default"))
    assert train_lib.map_supervised(config_lib.preset("default", heatmap_weight=0.0))
    assert not train_lib.map_supervised(config_lib.preset("default", heatmap_weight=0.0, vote_weight=0.0))
    assert not train_lib.map_supervised(config_lib.preset("default", loss_mode="lecture"))
    assert not train_lib.map_supervised(config_lib.preset("default", head="dense"))


def test_report_agrees_with_numpy_and_keras_metrics(smoke_run, data_dir):
    out, config, _ = smoke_run
    model = keras.models.load_model(out / "model.keras")
    threshold = train_lib.model_lib.presence_threshold(model)
    report = evaluate_lib.evaluate(str(out / "model.keras"), split="test", pictures=False)
    # Recompute on the same predictions, independently of evaluate.py.
    ds = pipeline.make_dataset("synthetic/tiny", "test", image_size=64, batch_size=7, data_dir=data_dir, cache=False)
    ys, ps = [], []
    for x, y in ds:
        ys.append(y.numpy())
        ps.append(np.asarray(model(x, training=False)))
    y, p = np.concatenate(ys), np.concatenate(ps)
    expected = numpy_report(y, p, threshold)
    for key in report_lib.REPORT_KEYS:
        assert report[key] == pytest.approx(expected[key], abs=1e-6), key
    assert report["counts"]["positives"] == int(y[:, 0].sum())
    # The streaming Keras metrics, compiled with the calibrated threshold, agree too.
    keras_numbers = model.evaluate(ds, verbose=0, return_dict=True)
    for key in report_lib.REPORT_KEYS:
        assert keras_numbers[key] == pytest.approx(expected[key], abs=1e-5), key
    # the confusion matrix sums to the image count, rows to the truth counts
    matrix = np.array(report["confusion_matrix"]["matrix"])
    assert matrix.sum() == len(y) and matrix[0].sum() == report["counts"]["background"]


def test_evaluate_cli_calibrates_a_saved_run(smoke_run, tmp_path):
    # A fresh process: the model's own layers must be registered by the command itself.
    out, _, _ = smoke_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    model = keras.models.load_model(out / "model.keras")
    _, y, p = evaluate_lib.predict_split(
        model, "synthetic/tiny", "validation", config_lib.Config.load(out / "config.json")
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "locnet_tf.evaluate",
            str(run / "model.keras"),
            "--calibrate",
            "--out",
            str(tmp_path / "r.json"),
        ],
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = calibration_lib.calibrate_threshold(y, p)
    assert json.loads((tmp_path / "r.json").read_text())["threshold"] == pytest.approx(expected, abs=1e-6)
    stored = train_lib.model_lib.presence_threshold(keras.models.load_model(run / "model.keras"))
    assert stored == pytest.approx(expected, abs=1e-6)


class _Interrupt(Exception):
    pass


class _KillAfterEpoch(keras.callbacks.Callback):
    """Stands in for a killed process: raises at the end of epoch `n`."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.n:
            raise _Interrupt()


class _FirstEpoch(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.first = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first is None:
            self.first = epoch


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_epoch(tmp_path, data_dir):
    config = config_lib.preset("smoke", data_dir=data_dir, epochs=4, evaluate=False, calibrate=False)
    with pytest.raises(_Interrupt):
        train_lib.train(config, out=str(tmp_path), verbose=0, extra_callbacks=[_KillAfterEpoch(1)])
    assert (tmp_path / "backup").exists()
    first = _FirstEpoch()
    result = train_lib.train(config, out=str(tmp_path), verbose=0, extra_callbacks=[first])
    assert first.first == 2, "the resumed run must start after the last finished epoch"
    assert result["history"]["epoch"] == [0.0, 1.0, 2.0, 3.0]
    assert not (tmp_path / "backup").exists()
    # A different config in the same folder is refused, not silently mixed.
    with pytest.raises(ValueError, match="different config.*epochs"):
        train_lib.train(config_lib.preset("smoke", data_dir=data_dir, epochs=5), out=str(tmp_path), verbose=0)


@pytest.mark.slow
def test_a_run_that_failed_before_training_can_be_retried_with_other_flags(tmp_path, data_dir):
    bad = config_lib.preset("smoke", data_dir=data_dir, data="csv:" + str(tmp_path / "nowhere.csv"))
    with pytest.raises(Exception, match="nowhere.csv"):
        train_lib.train(bad, out=str(tmp_path / "run"), verbose=0)
    assert (tmp_path / "run" / "config.json").exists()
    # the same folder, the data fixed: trains, instead of "holds a run with a different config"
    good = config_lib.preset("smoke", data_dir=data_dir, epochs=1, evaluate=False, calibrate=False)
    result = train_lib.train(good, out=str(tmp_path / "run"), verbose=0)
    assert result["history"]["epoch"] == [0.0]
    assert config_lib.Config.load(tmp_path / "run" / "config.json") == good


def test_calibrated_threshold_maximises_f1():
    # p_c of 4 objects and 4 backgrounds; any threshold in (0.3, 0.4] is perfect.
    y = np.zeros((8, 8), np.float32)
    y[:4, 0] = 1
    p = np.zeros((8, 8), np.float32)
    p[:, 0] = [0.9, 0.8, 0.45, 0.4, 0.3, 0.2, 0.1, 0.05]
    t = calibration_lib.calibrate_threshold(y, p, min_each=1)
    assert t == pytest.approx((0.4 + 0.3) / 2)
    assert calibration_lib.calibrate_threshold(y[:4], p[:4], min_each=1) == 0.5  # no background: nothing to calibrate


def test_too_few_background_images_keep_the_threshold_at_half():
    # 60 validation images, 10 of them background, one scored 0.997 (the 363 vehicle photos):
    # the F1 rule alone would put the threshold above it, at 0.998; too few to tell, so 0.5.
    y = np.zeros((60, 8), np.float32)
    y[10:, 0] = 1
    p = np.zeros((60, 8), np.float32)
    p[:, 0] = np.r_[0.997, np.full(9, 0.01), np.full(50, 0.999)]
    assert calibration_lib.calibrate_threshold(y, p, min_each=1) > 0.99
    assert calibration_lib.calibrate_threshold(y, p) == 0.5
    assert "50 objects and 10 background images: too few" in calibration_lib.calibration_shortfall(y)
    # Twenty of each are enough.
    y2, p2 = np.concatenate([y, y[:10]]), np.concatenate([p, p[1:11]])
    assert calibration_lib.calibration_shortfall(y2) is None
    assert calibration_lib.calibrate_threshold(y2, p2) > 0.99


def test_calibration_does_not_trade_a_miss_for_a_false_alarm():
    # Objects at 0.9, 0.8, 0.7, 0.2; backgrounds at 0.3, 0.1, 0.05, 0.01. Cut at 0.15: no miss,
    # one false alarm (F1 8/9); cut at 0.5: one miss, no false alarm (F1 6/7). One error either
    # way, one example apart in F1: the threshold stays near 0.5 instead of dropping to 0.15.
    y = np.zeros((8, 8), np.float32)
    y[:4, 0] = 1
    p = np.zeros((8, 8), np.float32)
    p[:, 0] = [0.9, 0.8, 0.7, 0.2, 0.3, 0.1, 0.05, 0.01]
    assert calibration_lib.calibrate_threshold(y, p, min_each=1) == pytest.approx((0.7 + 0.3) / 2)
    # A real gain still wins: with a fifth object at 0.25 the low cut makes one error, 0.5 makes two.
    y2 = np.concatenate([y, y[:1]])
    p2 = np.concatenate([p, p[:1]])
    p2[-1, 0] = 0.25
    assert calibration_lib.calibrate_threshold(y2, p2, min_each=1) == pytest.approx((0.2 + 0.1) / 2)
    # Scores that separate perfectly keep a threshold with no error, however near 0.5 a cut with one lies.
    y3 = np.zeros((4, 8), np.float32)
    y3[:2, 0] = 1
    p3 = np.zeros((4, 8), np.float32)
    p3[:, 0] = [0.95, 0.9, 0.45, 0.1]
    assert calibration_lib.calibrate_threshold(y3, p3, min_each=1) == pytest.approx((0.9 + 0.45) / 2)


def test_cli_flags_override_preset(tmp_path):
    args = train_main.build_parser().parse_args(
        [
            "--preset",
            "smoke",
            "--image-size",
            "48",
            "--filters",
            "4,8,8,8",
            "--depths",
            "1,1,2",
            "--no-augment",
            "--out",
            str(tmp_path),
        ]
    )
    config = train_main.config_from_args(args)
    assert (config.image_size, config.filters, config.augment, config.epochs) == (48, (4, 8, 8, 8), False, 2)
    assert config.depths == (1, 1, 2)
    assert config.model_kwargs()["depths"] == (1, 1, 2)
    with pytest.raises(ValueError, match="Unknown preset"):
        config_lib.preset("huge")
    # --help lists every field with its comment (a "%" in one once broke argparse).
    text = train_main.build_parser().format_help()
    assert "--progressive-share" in text and "cosine decay to 1% of it" in text


def _run(script, env=None, timeout=420):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finished(proc, timeout=420):
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"distributed run did not finish in {timeout} s:\n{output[-3000:]}")
    assert proc.returncode == 0, "\n".join(line for line in output.splitlines() if "rror" in line)[-3000:]
    return output


def _assert_finite_history(run_dir):
    history = runs.read_history(str(run_dir / "history.csv"))
    assert history["epoch"] == [0.0, 1.0]
    assert all(np.isfinite(history["loss"])) and all(np.isfinite(history["val_loss"]))


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tmp_path, data_dir):
    proc = _run(
        f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from locnet_tf.train import __main__ as train
        from locnet_tf.train.distribute import make_strategy
        # With progressive resizing, so that carrying the small model's weights and
        # optimizer state over to mirrored variables is covered too.
        train.main(["--preset", "smoke", "--strategy", "mirrored", "--data-dir", {data_dir!r},
                    "--progressive-size", "48", "--progressive-share", "0.5",
                    "--out", {str(tmp_path)!r}, "--quiet", "--no-evaluate"])
        strategy = make_strategy("mirrored")
        assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
        """
    )
    _finished(proc)
    _assert_finite_history(tmp_path)
    assert (tmp_path / "model.keras").exists()
    assert runs.read_history(str(tmp_path / "history.csv"))["image_size"] == [48.0, 64.0]


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_strategy_two_processes(tmp_path, data_dir):
    # Build the tiny dataset once so the two workers do not race to generate it.
    pipeline.examples("synthetic/tiny", "train", data_dir=data_dir)
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(
            _run(
                f"""
                from locnet_tf.train import __main__ as train
                # With progressive resizing: each worker builds, trains and carries
                # over a small model before the full-size one.
                train.main(["--preset", "smoke", "--strategy", "multi_worker", "--data-dir", {data_dir!r},
                            "--progressive-size", "48", "--progressive-share", "0.5",
                            "--out", {str(tmp_path)!r}, "--quiet", "--no-evaluate", "--no-calibrate"])
                """,
                env={"TF_CONFIG": tf_config},
            )
        )
    for proc in procs:
        _finished(proc)
    _assert_finite_history(tmp_path)
    assert (tmp_path / "model.keras").exists()
    assert not (tmp_path / ".worker_1").exists(), "the non-chief scratch folder must be cleaned up"
    assert runs.read_history(str(tmp_path / "history.csv"))["image_size"] == [48.0, 64.0]


def test_class_map_flag_means_the_same_everywhere():
    config = config_lib.preset("smoke", class_map="person=pedestrian, cat=")
    # "cat=" ignores cats (None), it does not create a class named "".
    assert config.class_map_dict() == {"person": "pedestrian", "cat": None}
    assert config.source_kwargs() == {
        "multi_object": "largest",
        "skip_bad": False,
        "class_map": {"person": "pedestrian", "cat": None},
    }


def test_small_training_split_without_augmentation_gets_a_hint():
    default = config_lib.preset("default")
    hint = train_lib.augmentation_hint(default, batches=20)  # 1,280 images, e.g. someone's photos
    assert "leave --preset out" in hint and "--preset photos" in hint and "1280 images" in hint
    assert train_lib.augmentation_hint(default, batches=625) is None  # synthetic_road/large
    assert train_lib.augmentation_hint(config_lib.preset("photos"), batches=20) is None
    assert train_lib.augmentation_hint(default, batches=None) is None  # size unknown: say nothing


def test_default_preset_is_the_synthetic_road_recipe_and_photos_keeps_augmentation(tmp_path):
    default, photos = config_lib.preset("default"), config_lib.preset("photos")
    assert default == config_lib.Config()
    # 40,000 synthetic images, which need no augmentation, at their native 128 px
    assert (default.data, default.augment, default.image_size, default.depths) == (
        "synthetic/large",
        False,
        128,
        (1, 2, 3),
    )
    # 6 of its 8 passes on 96 px windows at the images' own scale
    assert (default.progressive_size, default.progressive_mode, default.epochs) == (96, "crop", 8)
    assert train_lib.progressive_epochs(default) == 6
    # Photos: augmented, 96 px, no progressive resizing, 8 steps per call into TensorFlow.
    assert (photos.augment, photos.image_size, photos.depths, photos.progressive_share) == (True, 96, (1, 1, 1), 0.0)
    assert (photos.epochs, photos.steps_per_execution, train_lib.progressive_epochs(photos)) == (32, 8, 0)
    # demo and smoke build on photos: small data that needs augmentation
    demo = config_lib.preset("demo")
    assert demo.augment and config_lib.preset("smoke").augment
    # demo: 8 epochs at 96 px, the first half on whole images shrunk to 64 px
    assert (demo.image_size, demo.epochs, demo.progressive_mode, train_lib.progressive_epochs(demo)) == (
        96,
        8,
        "resize",
        4,
    )
    # the fields round-trip through config.json like every other field
    assert config_lib.Config.from_dict(json.loads(json.dumps(default.to_dict()))) == default
    # A config.json saved before crop mode existed meant resize: its run resumes unchanged.
    older = {k: v for k, v in demo.to_dict().items() if k != "progressive_mode"}
    (tmp_path / "config.json").write_text(json.dumps(older))
    assert config_lib.Config.load(tmp_path / "config.json") == demo


def _progressive(data_dir, **overrides):
    values = dict(
        data_dir=data_dir, epochs=4, progressive_size=48, progressive_share=0.5, evaluate=False, calibrate=False
    )
    return config_lib.preset("smoke", **{**values, **overrides})


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["resize", "crop"])
def test_progressive_resizing_carries_the_small_models_training_over(tmp_path, data_dir, mode):
    config = _progressive(data_dir, evaluate=True, progressive_mode=mode)
    result = train_lib.train(config, out=str(tmp_path), verbose=0)
    history = result["history"]
    assert history["epoch"] == [0.0, 1.0, 2.0, 3.0]
    assert history["image_size"] == [48.0, 48.0, 64.0, 64.0]
    for key in ("loss", "heatmap_loss", "val_loc_accuracy"):
        assert all(np.isfinite(history[key])), key
    assert not (tmp_path / "backup").exists()
    # The saved model is the full-size one, without the small model's size scaling.
    model = keras.models.load_model(tmp_path / "model.keras")
    assert model.input_shape == (None, 64, 64, 3)
    assert "where_sizes_scale" not in {layer.name for layer in model.layers}
    assert json.loads((tmp_path / "report.json").read_text())["counts"]["images"] > 0


def test_carry_over_copies_weights_and_optimizer_state_by_name():
    config = _progressive(None)
    small = train_lib.model_lib.build_model(
        image_size=48, size_scale=64 / 48, **{k: v for k, v in config.model_kwargs().items() if k != "image_size"}
    )
    full = train_lib.model_lib.build_model(**config.model_kwargs())
    schedule = keras.optimizers.schedules.CosineDecay(1e-2, decay_steps=10)
    source = train_lib.compile_for_training(small, config, optimizer=keras.optimizers.AdamW(schedule))
    target = train_lib.compile_for_training(full, config, optimizer=keras.optimizers.AdamW(schedule))
    x = np.random.default_rng(0).uniform(0, 255, (4, 48, 48, 3)).astype(np.float32)
    y = np.zeros((4, 8), np.float32)
    y[:2, 0], y[:2, 1:5], y[:2, 5] = 1.0, 0.5, 1.0
    for _ in range(3):
        source.train_on_batch(x, y)
    train_lib.carry_over(source, target)
    assert int(target.optimizer.iterations) == 3, "the learning-rate schedule must continue"
    for layer in full.layers:  # trainable weights and batch-norm statistics alike
        theirs = small.get_layer(layer.name).get_weights()
        assert len(theirs) == len(layer.weights), layer.name
        for mine, their in zip(layer.get_weights(), theirs):
            np.testing.assert_array_equal(mine, their)
    moments = {v.path.split("/", 1)[1]: v.numpy() for v in source.optimizer.variables}
    for variable in target.optimizer.variables:
        np.testing.assert_array_equal(variable.numpy(), moments[variable.path.split("/", 1)[1]])
    assert any(np.any(v.numpy() != 0) for v in target.optimizer.variables[1:]), "moments must not all be zero"


@pytest.mark.slow
def test_progressive_run_killed_in_either_phase_resumes_without_retraining(tmp_path, data_dir):
    config = _progressive(data_dir)
    # Killed after the last small epoch: those are not trained again.
    with pytest.raises(_Interrupt):
        train_lib.train(config, out=str(tmp_path), verbose=0, extra_callbacks=[_KillAfterEpoch(1)])
    first = _FirstEpoch()
    with pytest.raises(_Interrupt):
        train_lib.train(config, out=str(tmp_path), verbose=0, extra_callbacks=[first, _KillAfterEpoch(2)])
    assert first.first == 2
    # Killed in the full-size epochs: the small ones are skipped altogether.
    first = _FirstEpoch()
    result = train_lib.train(config, out=str(tmp_path), verbose=0, extra_callbacks=[first])
    assert first.first == 3
    assert result["history"]["epoch"] == [0.0, 1.0, 2.0, 3.0]
    assert result["history"]["image_size"] == [48.0, 48.0, 64.0, 64.0]
    assert not (tmp_path / "backup").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"progressive_share": 1.0}, "in \\[0, 1\\)"),
        ({"progressive_share": -0.5}, "in \\[0, 1\\)"),
        ({"progressive_size": 0}, "needs a --progressive-size"),
        ({"progressive_mode": "zoom"}, "'resize' or 'crop'"),
    ],
)
def test_progressive_settings_are_checked(overrides, message):
    with pytest.raises(ValueError, match=message):
        train_lib.progressive_epochs(_progressive(None, **overrides))


def test_progressive_share_rounds_down_and_is_off_where_it_cannot_apply():
    notices = []
    assert train_lib.progressive_epochs(_progressive(None, epochs=5, progressive_share=0.6)) == 3
    assert train_lib.progressive_epochs(_progressive(None, epochs=3, progressive_share=0.5)) == 1
    assert train_lib.progressive_epochs(_progressive(None, epochs=1, progressive_share=0.5)) == 0
    assert train_lib.progressive_epochs(config_lib.preset("smoke")) == 0
    # Off, with a notice: the dense head, and an input no larger than the small size.
    assert train_lib.progressive_epochs(_progressive(None, head="dense"), notice=notices.append) == 0
    assert train_lib.progressive_epochs(_progressive(None, progressive_size=64), notice=notices.append) == 0
    assert "dense head" in notices[0] and "not below --image-size 64" in notices[1]


def test_evaluate_skip_bad_flag_for_data_without_a_run_config(tmp_path, caltech_dir):
    # A model with no config.json beside it (an export, a copied file) reads the
    # Caltech photos, whose airplane.csv line 118 has a zero-height box.
    from locnet_tf.model import network as model_lib

    model = model_lib.build_model(
        class_names=["airplane", "face", "motorcycle"],
        image_size=32,
        filters=(4, 4, 4, 4),
        depths=(1, 1, 1),
        head_channels=4,
        head_units=4,
    )
    model.save(tmp_path / "model.keras")
    spec = f"csv:{caltech_dir}"
    with pytest.raises(Exception, match=r"airplane\.csv:118.*zero size"):
        evaluate_main.main([str(tmp_path / "model.keras"), "--data", spec])
    out = tmp_path / "report.json"
    assert evaluate_main.main([str(tmp_path / "model.keras"), "--data", spec, "--skip-bad", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["counts"]["images"] > 0


@pytest.mark.slow
def test_a_source_without_test_split_trains_and_skips_the_report(tmp_path, capsys):
    # The common YOLO data.yaml: train and val only.
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 4)):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "labels" / split).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
                tmp_path / "images" / split / f"{i}.png"
            )
            (tmp_path / "labels" / split / f"{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.4 0.3\n" if i % 3 else "")
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [cat, dog]\n")
    config = config_lib.preset(
        "smoke",
        data=f"yolo:{tmp_path / 'data.yaml'}",
        epochs=1,
        steps_per_epoch=1,
        validation_steps=1,
        batch_size=4,
        calibrate=True,
    )
    result = train_lib.train(config, out=str(tmp_path / "run"), verbose=1)
    assert result["report"] is None and not (tmp_path / "run" / "report.json").exists()
    assert (tmp_path / "run" / "model.keras").exists()
    assert "(test): no images in this split. Training goes on; the test report is skipped" in capsys.readouterr().out


def test_every_field_comment_is_its_help_text():
    # The comment after a field is its --help text; a field wrapped over lines loses it.
    comments = config_lib._field_comments()
    assert set(comments) <= {f.name for f in dataclasses.fields(config_lib.Config)}
    for name in ("init", "steps_per_execution", "progressive_mode"):
        assert comments[name], name


def test_flags_are_checked_against_the_preset_they_end_up_in():
    # 10 warm-up epochs exceed the Config default's 8 epochs, not the photos preset's 32.
    args = train_main.build_parser().parse_args(["--preset", "photos", "--warmup-epochs", "10"])
    assert train_main.config_from_args(args).warmup_epochs == 10
    args = train_main.build_parser().parse_args(["--preset", "smoke", "--warmup-epochs", "10"])
    with pytest.raises(ValueError, match=r"--warmup-epochs must be a number in \[0, 2\]"):
        train_main.config_from_args(args)
