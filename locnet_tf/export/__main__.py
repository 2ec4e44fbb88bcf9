"""`python -m locnet_tf.export MODEL`: the command line of the export (`locnet_tf.export.run` does the work)."""

from locnet_tf.core import tf_required as _tf_required  # noqa: F401  (first: `python -m` without TensorFlow says what to install)
import json
import sys


from locnet_tf.core import cli
from locnet_tf.core.command_configs import ExportConfig
from locnet_tf.export.convert import ExportError
from locnet_tf.export.run import export_model
from locnet_tf.export.parity import Gates


def build_parser():
    """The command line: the model, then one flag per `ExportConfig` field, grouped."""
    parser = cli.ArgumentParser(
        prog="python -m locnet_tf.export",
        description="Export a .keras model to SavedModel and TFLite, with a parity report.",
    )
    parser.add_argument("model", help="the .keras file (a training run's model.keras)")
    return ExportConfig.add_arguments(parser)


def main(argv=None):
    args = build_parser().parse_args(argv)
    settings = ExportConfig.from_args(args)
    gates = Gates(settings.max_float32_diff, settings.min_float16_iou, settings.max_int8_loc_drop)
    try:
        metadata = export_model(
            args.model,
            settings.out,
            formats=settings.formats,
            quantize=settings.quantize,
            data=settings.data,
            data_dir=settings.data_dir,
            skip_bad=settings.skip_bad,
            split=settings.split,
            calibration_samples=settings.calibration_samples,
            parity_samples=settings.parity_samples,
            gates=gates,
            num_threads=settings.threads,
            verbose=not settings.quiet,
        )
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"path": metadata["path"], "artifacts": sorted(metadata["artifacts"])}))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, skip_bad_hint=True))
