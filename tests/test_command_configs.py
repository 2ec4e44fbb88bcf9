"""Evaluate, export and predict have configs as training has one (`locnet_tf.core.command_configs`, issue 28).

Each command's flags are made from its dataclass: one flag per field with help text, the
parser's defaults are the fields', --help is grouped; the functions behind the commands take
the same defaults, and the export's metadata.json and the evaluation report record the
settings they ran with.
"""

import argparse
import dataclasses
import importlib
import inspect
import json
import subprocess
import sys

import pytest

from conftest import REPO
from helpers import SMOKE_SPEC as SPEC
from locnet_tf.core import cli
from locnet_tf.core import command_configs as cc
from locnet_tf.core import config as config_lib

# command -> (its module, the positional arguments a parse needs)
COMMANDS = {
    "evaluate": ("locnet_tf.evaluate.__main__", ["m.keras"]),
    "export": ("locnet_tf.export.__main__", ["m.keras"]),
    "predict": ("locnet_tf.predict", ["m.tflite", "x.jpg"]),
}


def _parser(command):
    return importlib.import_module(COMMANDS[command][0]).build_parser()


def _flag(name):
    return "--" + name.replace("_", "-")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_field_has_exactly_one_flag_with_help_and_its_default(command):
    cls = cc.COMMANDS[command]
    parser = _parser(command)
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    fields = dataclasses.fields(cls)
    # Every flag is a field's and every field has one flag: nothing is declared by hand beside the dataclass.
    assert sorted(a.dest for a in options) == sorted(f.name for f in fields)
    for field in fields:
        (action,) = [a for a in options if a.dest == field.name]
        assert action.option_strings[0] == _flag(field.name)
        assert action.help and action.help.strip(), field.name
        assert parser.get_default(field.name) == field.default, field.name
    # Parsed without flags: the dataclass's defaults, exactly.
    args = parser.parse_args(COMMANDS[command][1])
    assert cls.from_args(args) == cls()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_the_fields_in_their_groups(command):
    cls = cc.COMMANDS[command]
    parser = _parser(command)
    text = parser.format_help()
    _, groups = config_lib._field_layout(cls)
    assert set(groups) == {f.name for f in dataclasses.fields(cls)}  # every field sits in a group
    titles = {group.partition(":")[0].strip() for group in groups.values()}
    assert len(titles) >= 3
    for title in titles:
        assert f"\n{title}:\n" in text, title
    sections = {g.title: {a.dest for a in g._group_actions} for g in parser._action_groups}
    for name, group in groups.items():
        assert name in sections[group.partition(":")[0].strip()], name
        assert _flag(name) in text


def test_the_flags_keep_their_names_and_meanings():
    args = _parser("export").parse_args(
        ["m.keras", "--formats", "tflite", "--quantize", "float32,int8", "--calibration-samples", "10", "--quiet"]
    )
    settings = cc.ExportConfig.from_args(args)
    assert (settings.formats, settings.quantize, settings.calibration_samples) == (("tflite",), ("float32", "int8"), 10)
    assert settings.quiet and settings.skip_bad is None and settings.threads is None
    assert cc.ExportConfig().formats == ("saved_model", "tflite")
    assert cc.ExportConfig().quantize == ("float32", "float16", "dynamic", "int8")

    args = _parser("predict").parse_args(
        ["m.tflite", "a.jpg", "b.mp4", "--classes", "a,b,c", "--no-smooth", "--stride", "2", "--exact-resize"]
    )
    settings = cc.PredictConfig.from_args(args)
    assert args.sources == ["a.jpg", "b.mp4"]
    assert (settings.classes, settings.smooth, settings.stride, settings.exact_resize) == (
        ("a", "b", "c"),
        False,
        2,
        True,
    )
    with pytest.raises(SystemExit):  # argparse's own check of the choices
        _parser("predict").parse_args(["m.tflite", "a.jpg", "--resize", "squash"])

    args = _parser("evaluate").parse_args(["m.keras", "--calibrate", "--skip-bad", "--threshold", "0.4"])
    settings = cc.EvaluateConfig.from_args(args)
    assert (settings.calibrate, settings.skip_bad, settings.threshold, settings.split) == (True, True, 0.4, "test")
    # cli.ArgumentParser's finite-number check covers the generated float flags too.
    with pytest.raises(ValueError, match="--threshold must be a finite number"):
        _parser("evaluate").parse_args(["m.keras", "--threshold", "nan"])


def test_the_functions_take_the_commands_defaults():
    from locnet_tf.evaluate import run as evaluate
    from locnet_tf import predict
    from locnet_tf.export import run as export
    from locnet_tf.core import command_configs
    from locnet_tf.export import parity

    def default(function, name):
        return inspect.signature(function).parameters[name].default

    e = cc.ExportConfig()
    assert default(export.export_model, "formats") == e.formats
    assert default(export.export_model, "quantize") == e.quantize
    assert default(export.export_model, "calibration_samples") == e.calibration_samples
    assert default(export.export_model, "split") == e.split
    assert default(export.export_model, "num_threads") == e.threads
    gates = parity.Gates()
    assert (gates.float32_max_abs_diff, gates.float16_min_box_iou, gates.int8_max_loc_drop) == (
        e.max_float32_diff,
        e.min_float16_iou,
        e.max_int8_loc_drop,
    )
    assert command_configs.FORMATS == cc.FORMATS and command_configs.QUANTIZATIONS == cc.QUANTIZATIONS
    p = cc.PredictConfig()
    for parameter, field in [("stride", "stride"), ("max_frames", "max_frames"), ("smooth", "smooth")]:
        assert default(predict.iter_predictions, parameter) == getattr(p, field)
    assert default(predict.iter_predictions, "decoder_threads") == p.decoder_threads
    assert default(predict.iter_predictions, "exact_resize") == p.exact_resize
    assert default(evaluate.evaluate, "split") == cc.EvaluateConfig().split


def test_the_configs_are_plain_data():
    # Predict runs on the device install: its config may not pull in TensorFlow or Keras.
    code = "import sys, locnet_tf.core.command_configs; print(sorted({'tensorflow', 'keras'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--stride", "0"], "--stride must be at least 1, got 0."),
        (["--threads", "0"], "--threads must be at least 1, got 0."),
        (["--threshold", "1.5"], "--threshold must be in [0, 1], got 1.5."),
        (["--decoder-threads", "-1"], "--decoder-threads must be 0 (FFmpeg's choice) or more, got -1."),
        (["--max-frames", "0"], "--max-frames must be at least 1, got 0."),
    ],
)
def test_a_bad_predict_setting_is_one_error_line(tmp_path, capsys, flags, message):
    from locnet_tf import predict

    assert cli.run(lambda argv: predict.main([str(tmp_path / "m.tflite"), "x.jpg", *flags])) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"error: {message}" and len(err) == 2  # and the traceback hint
    assert list(tmp_path.iterdir()) == []


def test_a_to_dict_round_trips_through_json():
    settings = cc.ExportConfig(formats=("tflite",), threads=2)
    values = json.loads(json.dumps(settings.to_dict()))
    assert values["formats"] == ["tflite"] and values["threads"] == 2
    assert cc.ExportConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}) == settings


def test_the_export_metadata_records_its_resolved_config(smoke):
    recorded = smoke["metadata"]["export_config"]
    assert set(recorded) == {f.name for f in dataclasses.fields(cc.ExportConfig)}
    # As the export ran: the folder, the data and TFDS folder it checked with, the gates, skip_bad resolved.
    assert recorded["out"] == str(smoke["export"])
    assert (recorded["data"], recorded["data_dir"]) == (SPEC, smoke["data_dir"])
    assert recorded["calibration_samples"] == 32 and recorded["quiet"] is True
    assert recorded["skip_bad"] is False
    assert recorded["formats"] == list(cc.FORMATS) and recorded["quantize"] == list(cc.QUANTIZATIONS)
    gates = smoke["metadata"]["parity"]["gates"]
    assert recorded["max_float32_diff"] == gates["float32_max_abs_diff"]
    on_disk = json.loads((smoke["export"] / "metadata.json").read_text())
    assert on_disk["export_config"] == recorded


def test_the_evaluation_report_records_its_resolved_config(tmp_path, smoke, capsys):
    from locnet_tf.evaluate import __main__ as evaluate_main

    out = tmp_path / "report.json"
    flags = [str(smoke["model"]), "--data", SPEC, "--data-dir", smoke["data_dir"], "--out", str(out)]
    assert evaluate_main.main([*flags, "--threshold", "0.25", "--split", "validation"]) == 0
    report = json.loads(out.read_text())
    recorded = report["evaluate_config"]
    assert recorded == {
        "data": SPEC,
        "data_dir": smoke["data_dir"],
        "split": "validation",
        "skip_bad": False,
        "threshold": 0.25,
        "calibrate": False,
        "out": str(out),
    }
    assert report["threshold"] == 0.25 and report["split"] == "validation"
    assert "Report:" in capsys.readouterr().out


def test_training_flags_come_from_the_same_machinery():
    # Training's Config goes through add_field_arguments too: its --help is grouped by the "# ---" lines.
    parser = config_lib.add_config_arguments(argparse.ArgumentParser())
    titles = [g.title for g in parser._action_groups]
    for title in ("data", "model", "loss", "optimisation", "outputs"):
        assert title in titles
    # The preset decides unless a flag is given: every field's flag defaults to None.
    assert all(parser.get_default(f.name) is None for f in dataclasses.fields(config_lib.Config))
