"""The old names of moved modules (issue 28, docs/architecture.md "Shims for moved public names").

Each old name still gives the very object at its new place, with a DeprecationWarning that names
the new place and the version that removes the old name (0.4.0).
"""

import importlib
import subprocess
import sys
import warnings

import pytest

from conftest import REPO

# (old module, attribute, new module): one attribute per shim, and every split module's parts.
SHIMS = [
    ("locnet_tf.config", "Config", "locnet_tf.core.config"),
    ("locnet_tf.images", "read_image", "locnet_tf.core.image_files"),
    ("locnet_tf.images", "inspect", "locnet_tf.core.image_files"),
    ("locnet_tf.images", "resize", "locnet_tf.core.resize"),
    ("locnet_tf.images", "letterbox_geometry", "locnet_tf.core.geometry"),
    ("locnet_tf.images", "ImageError", "locnet_tf.core.errors"),
    ("locnet_tf.data.pipeline", "DataError", "locnet_tf.core.errors"),
    ("locnet_tf.data.pipeline", "read_image", "locnet_tf.data.decode"),
    ("locnet_tf.data.pipeline", "apply_orientation", "locnet_tf.data.decode"),
    ("locnet_tf.target", "TargetLayout", "locnet_tf.model.target"),
    ("locnet_tf.boxes", "to_target", "locnet_tf.model.boxes"),
    ("locnet_tf.losses", "LocalizationLoss", "locnet_tf.model.losses"),
    ("locnet_tf.smoothing", "Smoother", "locnet_tf.runtime.smoothing"),
    ("locnet_tf.draw", "annotate", "locnet_tf.runtime.draw"),
    ("locnet_tf.data.synthetic_video", "write_clip", "locnet_tf.data.builtin.synthetic_video"),
    ("locnet_tf.inference", "Predictor", "locnet_tf.evaluate.predictor"),
    ("locnet_tf.inference", "outputs_to_vector", "locnet_tf.model.target"),
    ("locnet_tf.recipe", "resolve", "locnet_tf.train.recipe"),
    ("locnet_tf.pretrained", "build", "locnet_tf.train.pretrained"),
    ("locnet_tf.export", "Gates", "locnet_tf.export.parity"),
    ("locnet_tf.export", "check_gates", "locnet_tf.export.parity"),
    ("locnet_tf.export", "data_settings", "locnet_tf.export.parity"),
    ("locnet_tf.export", "ExportError", "locnet_tf.export.convert"),
    ("locnet_tf.export", "convert_tflite", "locnet_tf.export.convert"),
    ("locnet_tf.export", "write_saved_model", "locnet_tf.export.convert"),
    ("locnet_tf.export", "write_tflite_source", "locnet_tf.export.convert"),
    ("locnet_tf.export", "tflite_file_metadata", "locnet_tf.export.model_card"),
    ("locnet_tf.export", "QUANTIZATIONS", "locnet_tf.core.command_configs"),
    ("locnet_tf", "register", "locnet_tf.data"),
    ("locnet_tf.runtime.video", "VideoWriter", "locnet_tf.runtime.video_writer"),
    ("locnet_tf.runtime.video", "predict_frames", "locnet_tf.runtime.frame_predictions"),
    ("locnet_tf.runtime.video", "expand_sources", "locnet_tf.runtime.source_specs"),
]


# Modules that stayed where they were and warn for single names that moved out of them.
NAME_SHIMS = ("locnet_tf", "locnet_tf.export", "locnet_tf.data.pipeline", "locnet_tf.runtime.video")


@pytest.mark.parametrize("old, name, new", SHIMS, ids=[f"{old}.{name}" for old, name, _ in SHIMS])
def test_an_old_name_warns_and_gives_the_new_object(old, name, new):
    module = importlib.import_module(old)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = getattr(module, name)
    expected = getattr(importlib.import_module(new), name)
    moved_to = new if old not in NAME_SHIMS else f"{new}.{name}"
    assert value is expected
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    old_name = old if old not in NAME_SHIMS else f"{old}.{name}"
    assert messages == [f"{old_name} moved to {moved_to}; the old name goes in 0.4.0"], messages
    assert caught[0].filename == __file__  # the warning points at the caller's line


def test_a_name_the_old_module_never_had_is_an_attribute_error():
    from locnet_tf import images

    with pytest.raises(AttributeError, match="no_such_name"):
        _ = images.no_such_name


def test_the_packages_lazy_module_names_are_the_shims():
    import locnet_tf

    with pytest.warns(DeprecationWarning, match="locnet_tf.boxes moved to locnet_tf.model.boxes"):
        assert locnet_tf.boxes.to_target is importlib.import_module("locnet_tf.model.boxes").to_target
    with pytest.warns(DeprecationWarning, match="locnet_tf.target moved to locnet_tf.model.target"):
        assert locnet_tf.target.TargetLayout is importlib.import_module("locnet_tf.model.target").TargetLayout


def test_importing_a_shim_loads_nothing_and_does_not_warn():
    code = (
        "import sys, warnings\n"
        "warnings.simplefilter('error')\n"
        "import locnet_tf.config, locnet_tf.images, locnet_tf.target, locnet_tf.smoothing, locnet_tf.recipe\n"
        "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


@pytest.mark.slow
def test_python_m_pretrained_runs_the_new_command():
    out = subprocess.run(
        [sys.executable, "-m", "locnet_tf.pretrained", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "locnet_tf.train.pretrained" in out.stdout
    assert "locnet_tf.pretrained moved to locnet_tf.train.pretrained" in out.stderr
