"""The learned start that ships with the package: `train --init pretrained`.

    python -m locnet_tf.train.pretrained [--out locnet_tf/weights/procedural.keras] [--epochs N]

builds it again, from nothing but the package: it draws the formula-driven
pictures of `procedural_objects` (fractals of 64 categories on dead-leaves
backgrounds, `locnet_tf.data.builtin.procedural`), trains the real-photo recipe's
network on them (the `pretrain` preset) and saves the model without its
optimizer state (1.9 MB). Nothing is downloaded; about 15 minutes on a
2-core CPU. CPU training is not bit-for-bit deterministic across machines,
so a rebuilt file differs in its bits, not in what it is.

`--init pretrained` (or `train --init PATH` for any other locnet_tf model)
starts from it: backbone, box head and presence head carry over, the class
head is new (`locnet_tf.train.transfer`).
"""

import argparse
import pathlib
import shutil
import sys
import tempfile

from locnet_tf.core import config as config_lib


def build(out=config_lib.PRETRAINED_WEIGHTS, run_dir=None, verbose="auto", **overrides):
    """Pretrains on `procedural_objects` (the `pretrain` preset) and saves the model to `out`.

    Args:
        out: str or Path. The `.keras` file to write (without optimizer state).
        run_dir: the training run folder (kept; resumable). Default: a temporary one.
        verbose: Keras fit verbosity.
        **overrides: `Config` fields (e.g. `epochs`).

    Returns:
        The training result (`train.train`).
    """
    import keras

    from locnet_tf.core import outputs
    from locnet_tf.train import run as train_lib

    config = config_lib.preset("pretrain", **overrides)
    temporary = run_dir is None
    run_dir = pathlib.Path(run_dir or tempfile.mkdtemp(prefix="locnet_pretrain_"))
    try:
        result = train_lib.train(config, out=str(run_dir), verbose=verbose)
        model = keras.models.load_model(result["model_path"], compile=False)
        out = pathlib.Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with outputs.atomic_path(out) as partial:  # whole or not at all
            model.save(partial)  # not compiled: no optimizer state, a third of the size
    finally:
        if temporary:
            shutil.rmtree(run_dir, ignore_errors=True)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m locnet_tf.train.pretrained", description=__doc__.split("\n\n")[0])
    default = config_lib.PRETRAINED_WEIGHTS  # the file `--init pretrained` reads
    parser.add_argument("--out", default=str(default), help=f"the weights file to write (default: {default})")
    parser.add_argument("--run-dir", help="keep the training run here (resumable) instead of a temporary folder")
    parser.add_argument("--epochs", type=int, help="override the pretrain preset's epochs")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    overrides = {"epochs": args.epochs} if args.epochs else {}
    result = build(args.out, run_dir=args.run_dir, verbose=0 if args.quiet else "auto", **overrides)
    size = pathlib.Path(args.out).stat().st_size / 1e6
    print(f"Pretrained weights: {args.out} ({size:.1f} MB, {result['seconds'] / 60:.0f} min)")
    return 0


if __name__ == "__main__":
    from locnet_tf.core import cli

    sys.exit(cli.run(main))
