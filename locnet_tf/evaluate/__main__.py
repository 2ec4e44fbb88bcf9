"""`python -m locnet_tf.evaluate MODEL --data SPEC`: the evaluation command line (`run` does the work)."""

from locnet_tf.core import tf_required as _tf_required  # noqa: F401  (first: `python -m` without TensorFlow says what to install)
import sys


from locnet_tf.core import cli
from locnet_tf.core.command_configs import EvaluateConfig
from locnet_tf.evaluate.calibration import calibrate
from locnet_tf.evaluate.run import _claim_outputs, evaluate
from locnet_tf.evaluate.report import REPORT_KEYS


def format_report(report):
    """A short console table of a report."""
    c = report["counts"]
    lines = [
        f"{report.get('data', '?')} ({report.get('split', '?')}): {c['images']} images, "
        f"{c['positives']} with an object, {c['background']} background; threshold {report['threshold']:.3f}",
        "  " + "  ".join(f"{k} {report[k]:.4f}" for k in REPORT_KEYS),
    ]
    several = report.get("several_objects")
    if several and several["images"]:  # the target is one of them: a box on another is still an object found
        lines.append(
            f"  {several['images']} images with several labelled objects (the target is the largest): "
            f"loc_accuracy {several['loc_accuracy']:.4f} there, {several['loc_accuracy_any_object']:.4f} "
            f"counting a box on any of them; over all images loc_accuracy_any_object "
            f"{report['loc_accuracy_any_object']:.4f}"
        )
    lines += [
        f"  {'class':<14}{'count':>7}{'cls_acc':>9}{'mean_iou':>9}{'loc_acc':>9}",
    ]
    for name, v in report["per_class"].items():
        lines.append(
            f"  {name:<14}{v['count']:>7}{v['class_accuracy']:>9.4f}{v['mean_iou']:>9.4f}{v['loc_accuracy']:>9.4f}"
        )
    lines.append(
        f"  {'object area':<14}{'count':>7}{'found':>9}{'mean_iou':>9}{'loc_acc':>9}{'h bias':>9}{'w bias':>9}"
    )
    for name, v in report["per_size"].items():
        low, high = v["area"]
        span = f">={low:.0%}" if high is None else f"<{high:.0%}" if low == 0 else f"{low:.0%}-{high:.0%}"
        if not v["count"]:  # no such objects: no figures, rather than zeros that read as failures
            lines.append(f"  {name + ' ' + span:<14}{0:>7}" + f"{'-':>9}" * 5)
            continue
        lines.append(
            f"  {name + ' ' + span:<14}{v['count']:>7}{v['presence_recall']:>9.4f}{v['mean_iou']:>9.4f}"
            f"{v['loc_accuracy']:>9.4f}{v['size_bias']['h']:>+9.3f}{v['size_bias']['w']:>+9.3f}"
        )
    return "\n".join(lines)


def build_parser():
    """The command line: the model, then one flag per `EvaluateConfig` field, grouped."""
    parser = cli.ArgumentParser(prog="python -m locnet_tf.evaluate", description="Evaluate a model.")
    parser.add_argument(
        "model", help="a .keras model (e.g. RUN_DIR/model.keras), a SavedModel folder or a .tflite file"
    )
    return EvaluateConfig.add_arguments(parser)


def main(argv=None):
    args = build_parser().parse_args(argv)
    settings = EvaluateConfig.from_args(args)
    if settings.out:  # before calibrating, which rewrites the model
        _claim_outputs(settings.out, True, args.model, settings.data, settings.data_dir)
    if settings.calibrate:
        notes = []  # a split too small to calibrate on says so instead
        threshold = calibrate(
            args.model,
            data=settings.data,
            data_dir=settings.data_dir,
            skip_bad=settings.skip_bad,
            notice=notes.append,
        )
        print(*notes or [f"calibrated presence threshold: {threshold:.3f}"])
    report = evaluate(
        args.model,
        data=settings.data,
        split=settings.split,
        out=settings.out,
        threshold=settings.threshold,
        data_dir=settings.data_dir,
        skip_bad=settings.skip_bad,
        calibrated=settings.calibrate,
    )
    print(format_report(report))
    if settings.out:
        print(f"Report: {settings.out}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, skip_bad_hint=True))
