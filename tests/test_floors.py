"""Issue 28's move plan, steps 1-5 and 7: what each step moved down, and that the old ways still work."""

import subprocess
import sys

import pytest

from conftest import REPO

from locnet_tf.core import config as config_lib
from locnet_tf.core import specs


def _run(code):
    """Runs `code` in a fresh interpreter (nothing imported yet); returns its stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


# --- step 1: the choice lists live in config, and the modules that act on them use those


def test_choice_lists_are_configs():
    from locnet_tf.model import losses, network as model
    from locnet_tf.data.readers import entries as source_utils

    assert model.BACKBONES is config_lib.BACKBONES
    assert losses.MODES is config_lib.MODES and losses.BOX_LOSSES is config_lib.BOX_LOSSES
    assert source_utils.MULTI_OBJECT_POLICIES is config_lib.MULTI_OBJECT_POLICIES
    assert source_utils.UNKNOWN_POLICIES is config_lib.UNKNOWN_POLICIES


@pytest.mark.parametrize(
    "field, value, flag",
    [
        ("backbone", "resnet", "--backbone"),
        ("loss_mode", "course", "--loss-mode"),
        ("box_loss", "iou", "--box-loss"),
        ("multi_object", "all", "--multi-object"),
    ],
)
def test_validate_names_the_choices_from_config(field, value, flag):
    with pytest.raises(ValueError, match=f"^{flag} must be one of .*; got '{value}'"):
        config_lib.validate(config_lib.Config(**{field: value}))


def test_config_loads_without_keras_or_data_code():
    # Checking a config is plain data: validate, class_map_dict and data_inputs load no Keras and no reader.
    loaded = _run(
        "import sys\n"
        "from locnet_tf.core import config, outputs\n"
        "c = config.validate(config.Config(data='csv:x.csv', class_map='a=b'))\n"
        "assert c.class_map_dict() == {'a': 'b'}\n"
        "outputs.data_inputs('voc:somewhere')\n"
        "print(sorted(m for m in sys.modules if m in ('keras', 'tensorflow') or m.startswith('locnet_tf.')))\n"
    )
    expected = ["locnet_tf.core", "locnet_tf.core.config", "locnet_tf.core.outputs", "locnet_tf.core.specs"]
    assert loaded.strip() == str(expected)


# --- step 2: core/specs.py


def test_every_file_kind_has_a_reader():
    from locnet_tf.data import sources

    assert specs.FILE_KINDS == tuple(sources.READERS)
    assert sources.parse_spec is specs.parse_spec and sources.parse_class_map is specs.parse_class_map


def test_specs():
    assert specs.parse_spec("yolo:a/data.yaml") == ("yolo", "a/data.yaml")
    assert specs.parse_spec("procedural/small") == ("procedural", "small")
    with pytest.raises(ValueError, match="Did you mean 'csv:x'"):
        specs.parse_spec("cvs:x")
    assert specs.is_synthetic("synthetic/tiny") and not specs.is_synthetic("synthetics")
    assert specs.parse_class_map("a=b, c=") == {"a": "b", "c": None}


def test_data_inputs_take_the_file_kinds(tmp_path):
    from locnet_tf.core import outputs

    for kind in specs.FILE_KINDS:
        assert outputs.data_inputs(f"{kind}:{tmp_path}") == [(str(tmp_path), "the data folder", True)]
    assert outputs.data_inputs("tfds:mnist") == [] and outputs.data_inputs("synthetic") == []


# --- step 3: the shipped start's path, where the config checks `--init`


def test_init_pretrained_is_the_shipped_file():
    from locnet_tf.train import transfer

    assert config_lib.init_path("pretrained") == config_lib.PRETRAINED_WEIGHTS
    assert transfer.model_path("pretrained") == config_lib.PRETRAINED_WEIGHTS
    assert config_lib.PRETRAINED_WEIGHTS.is_file()


# --- steps 4 and 5: the weights check in the Keras core, flags -> Config in train


def _garbage_weights(tmp_path):
    path = tmp_path / "garbage.h5"
    path.write_bytes(b"\0not weights" * 100)
    return path


def test_validate_is_plain_data_and_train_checks_the_weights_file(tmp_path):
    from locnet_tf.train import run as train_lib

    config = config_lib.Config(backbone="mobilenet_v2", image_size=96, weights=str(_garbage_weights(tmp_path)))
    config_lib.validate(config)  # the file exists: all the plain-data check can tell
    with pytest.raises(ValueError, match=r"--weights \S*garbage\.h5: not a Keras weights file"):
        train_lib.check_config(config)
    assert not hasattr(config_lib, "check_weights_file") and not hasattr(config_lib, "config_from_args")


def test_a_bad_weights_file_is_the_first_error_before_any_data_is_read(tmp_path):
    from locnet_tf.train import __main__ as train_main
    from locnet_tf.train import run as train_lib

    # Data that is not there: reading it would fail, but the weights are checked first.
    flags = ["--data", f"csv:{tmp_path / 'missing.csv'}", "--backbone", "mobilenet_v2", "--image-size", "96"]
    flags += ["--weights", str(_garbage_weights(tmp_path))]
    args = train_main.build_parser().parse_args(flags)
    with pytest.raises(ValueError, match="not a Keras weights file"):
        train_main.config_from_args(args, notice=lambda line: None)
    config = config_lib.Config(data=flags[1], backbone="mobilenet_v2", image_size=96, weights=flags[-1])
    with pytest.raises(ValueError, match="not a Keras weights file"):
        train_lib.train(config, out=str(tmp_path / "run"), verbose=0)
    assert not (tmp_path / "run").exists()


# --- step 7: registration by plain imports, no post-import hooks


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory):
    """A small locnet_tf model saved as .keras (its layers are the package's own)."""
    from locnet_tf.model import network as model_lib

    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model_lib.build_model(image_size=32, filters=(4, 4, 4, 4), head_channels=4, head_units=8).save(path)
    return path


def test_no_post_import_hooks():
    import locnet_tf

    source = (REPO / "locnet_tf" / "__init__.py").read_text()
    assert "wrapt" not in source and "import_hook" not in source
    # Importing Keras and TFDS after the package registers nothing: the modules that register do.
    out = _run(
        "import sys, locnet_tf, keras, tensorflow_datasets as tfds\n"
        "print('locnet_tf.model' in sys.modules, 'synthetic_road' in tfds.list_builders(with_community_datasets=False))"
    )
    assert out.split() == ["False", "False"]
    assert not hasattr(locnet_tf, "_install_import_hooks")


def test_loading_a_keras_file_needs_only_the_model_module(tiny_keras):
    out = _run(
        "import keras, locnet_tf.model\n"
        f"model = keras.models.load_model({str(tiny_keras)!r})\n"
        "print(model.get_layer('target').class_names)"
    )
    assert out.strip() == "['pedestrian', 'car', 'motorcycle']"
    # The package's own loader imports the model module itself.
    out = _run(
        "from locnet_tf.evaluate import predictor as inference\n"
        f"print(inference.load_keras({str(tiny_keras)!r}).input_shape)"
    )
    assert out.strip() == "(None, 32, 32, 3)"


def test_a_fine_tuning_checkpoint_loads_in_a_fresh_process(tmp_path):
    """A run that died mid-fine-tuning leaves model.keras with its optimizer, FineTuneAdamW: the
    loader must know that class too (evaluate once answered "Could not locate class 'FineTuneAdamW'")."""
    from locnet_tf.model import finetune
    from locnet_tf.model import network as model_lib

    config = config_lib.Config(backbone="efficientnet_lite0", weights="imagenet", image_size=64, steps_per_execution=1)
    model = model_lib.build_model(config, num_classes=3)
    model_lib.compile_model(model, optimizer=finetune.make_optimizer(model, config, 1e-3, 1), jit_compile=False)
    path = tmp_path / "model.keras"
    model.save(path)
    out = _run(
        "from locnet_tf.evaluate import predictor as inference\n"
        f"model = inference.load_keras({str(path)!r})\n"
        "print(type(model.optimizer).__name__, model.optimizer.backbone_lr_scale)"
    )
    assert out.split() == ["FineTuneAdamW", str(config.backbone_lr_scale)]


def test_the_pipeline_registers_the_builders():
    out = _run(
        "import tensorflow_datasets as tfds\nfrom locnet_tf.data import pipeline\n"
        "names = tfds.list_builders(with_community_datasets=False)\n"
        "print('synthetic_road' in names, 'procedural_objects' in names)"
    )
    assert out.split() == ["True", "True"]


def test_data_register_does_both_and_the_old_name_warns(tiny_keras):
    out = _run(
        "import warnings, keras, tensorflow_datasets as tfds, locnet_tf.data\n"
        "locnet_tf.data.register()\n"
        f"print(keras.models.load_model({str(tiny_keras)!r}).name != '')\n"
        "print('synthetic_road' in tfds.list_builders(with_community_datasets=False))\n"
        "import locnet_tf\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    assert locnet_tf.register is locnet_tf.data.register\n"
        "(warning,) = caught\n"
        "print(warning.category.__name__, warning.message)"
    )
    assert out.splitlines() == [
        "True",
        "True",
        "DeprecationWarning locnet_tf.register moved to locnet_tf.data.register; the old name goes in 0.4.0",
    ]
