"""Train a localization model: `python -m locnet_tf.train --data SPEC --out RUN_DIR`.

The command line: flags -> Config -> `locnet_tf.train.run.train`, which does the work.
"""

from locnet_tf.core import tf_required as _tf_required  # noqa: F401  (first: `python -m` without TensorFlow says what to install)
import contextlib
import os
import sys


from locnet_tf.core import cli
from locnet_tf.core import config as config_lib
from locnet_tf.core import outputs, runs
from locnet_tf.train.run import config_and_source, train


def config_from_args(args, notice=print):
    """The `Config` from parsed arguments: the preset's values (or the recipe
    `--preset auto` chooses from the data, `locnet_tf.train.recipe`), then the given flags."""
    return config_and_source(args, notice)[0]


def build_parser():
    parser = cli.ArgumentParser(prog="python -m locnet_tf.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/latest", help="run folder (default: runs/latest)")
    parser.add_argument("--overwrite", action="store_true", help="start afresh in a run folder holding another config")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    config_lib.add_config_arguments(parser)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    # Another training writing the folder is refused before the data are read. Multi-worker
    # processes share --out (each writes its own part): train() locks those parts.
    early = "TF_CONFIG" not in os.environ
    with runs.locked(args.out, existing_only=True) if early else contextlib.nullcontext():
        # Before the recipe reads the data: a new, empty or run folder that holds none of it (outputs.claim_folder).
        outputs.claim_folder(args.out, "train", outputs.data_inputs(args.data, args.data_dir))
        config, source = config_and_source(args)
        verbose = 0 if args.quiet else "auto"
        result = train(config, out=args.out, verbose=verbose, overwrite=args.overwrite, source=source)
    print(f"Run folder: {result['run_dir']} (model: {result['model_path']}, {result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, skip_bad_hint=True))
