"""Train a localization model: `python -m locnet_tf.train --data SPEC --out RUN_DIR`.

The run folder ends up holding:

    config.json    the resolved config (the same command resumes the run)
    model.keras    the best model by validation localization accuracy (ties and
                   near-ties to the better mean IoU: `runs.SELECTION`), with the
                   calibrated presence threshold stored in it
    history.csv    one row per epoch: losses (total and per term) and metrics
    curves.png     training curves, redrawn after every epoch
    logs/          TensorBoard logs
    report.json    evaluation of the best model on the test split (+ eval/*.png)
    backup/        BackupAndRestore state while a run is unfinished (removed at the end)

A run that dies (killed, machine lost) resumes from its last finished epoch when
the same command is run again. `--out` must be new, empty or a run folder
(marked `.locnet_tf.json`, or an older run's config.json): a folder of other
files is refused (`locnet_tf.core.outputs`). `--init RUN --out RUN --overwrite`
fine-tunes in place: the start model is loaded before the folder is cleared.

Read top to bottom: `train()` resolves the data (`sources`, `datasets`), builds
and compiles the model (`_build_trainer`, `compile_for_training`), and fits it
with the callbacks. The other concerns live beside it: `locnet_tf.core.runs` (the run
folder), `locnet_tf.train.callbacks`, `locnet_tf.train.progressive` (progressive resizing,
on by default) and `locnet_tf.train.distribute` (`--strategy`).
"""

from locnet_tf.core import tf_required as _tf_required  # noqa: F401  (first: `python -m` without TensorFlow says what to install)
import contextlib
import dataclasses
import pathlib
import shutil
import time

import keras
import tensorflow as tf

from locnet_tf.core import config as config_lib
from locnet_tf.model import losses as losses_lib
from locnet_tf.model import network as model_lib
from locnet_tf.model import finetune, weights as weights_check
from locnet_tf.train import recipe, transfer
from locnet_tf.core import outputs, runs
from locnet_tf.train.callbacks import (
    AtomicBackup,
    BestCheckpoint,
    CurvesPlot,
    HistoryCSV,
    LogValue,
    SelectionScore,
    StopOnCtrlC,
    state_bytes,
)
from locnet_tf.train.distribute import make_strategy, patch_multi_worker
from locnet_tf.train.progressive import SMALL_BACKUP, carry_over, progressive_epochs
from locnet_tf.train.progressive import describe as describe_progressive

# Kept importable from here (notebooks, benchmarks, older code): `distribute.make_strategy`,
# `progressive.carry_over`, `progressive.progressive_epochs`, `callbacks.BestCheckpoint`.

BEST_METRIC = runs.SELECTION  # localization accuracy, ties to the better boxes (see `runs.SELECTION`)


def map_supervised(config):
    """Whether training adds `losses.map_terms` (spatial head, default loss mode, a weight > 0).

    The lecture mode is the course's formula exactly, and the dense head has no
    map, so neither gets the terms.
    """
    weighted = config.heatmap_weight > 0 or config.vote_weight > 0
    return weighted and config.head == "spatial" and config.loss_mode == "default"


def compile_for_training(model, config, loss=None, optimizer=None, jit_compile="auto"):
    """Compiles `model` and returns what `fit` trains: the model, or its `MapSupervision`.

    The wrapper (when `map_supervised(config)`) trains the same layers with the
    box map's own terms added, and shares the model's optimizer, so the model
    saved afterwards carries its state.
    """
    loss = loss or losses_lib.LocalizationLoss()
    steps = config.steps_per_execution
    model_lib.compile_model(model, loss=loss, optimizer=optimizer, jit_compile=jit_compile, steps_per_execution=steps)
    if not map_supervised(config):
        return model
    trainer = losses_lib.MapSupervision(
        model, loss, heatmap_weight=config.heatmap_weight, vote_weight=config.vote_weight, sigma=config.heatmap_sigma
    )
    return model_lib.compile_model(
        trainer,
        loss=loss,
        optimizer=model.optimizer,
        jit_compile=jit_compile,
        threshold=model_lib.presence_threshold(model),
        steps_per_execution=steps,
    )


def _steps(dataset):
    n = int(dataset.cardinality())
    return n if n > 0 else None


# Below this many training images, training without augmentation is likely a
# mistake: the synthetic_road model memorised 8,000 unaugmented images (train
# loc 0.99, test 0.88) and needed none with 40,000.
AUGMENT_BELOW = 20000


def augmentation_hint(config, batches):
    """A note when a small training split trains without augmentation (the default preset's setting), else None."""
    if config.augment or not batches or batches * config.batch_size >= AUGMENT_BELOW:
        return None
    return (
        f"Note: training without augmentation on at most {batches * config.batch_size} images "
        f"({batches} batches of {config.batch_size}). The default preset leaves augmentation off for its "
        f"40,000 synthetic images; smaller sets need it, and more epochs: leave --preset out (auto chooses "
        f"the real-photo recipe for your data) or use --preset photos with --epochs for your data."
    )


def _learning_rate(config, steps_per_epoch):
    """Linear warm-up then cosine decay; a constant when the epoch length is unknown."""
    if not steps_per_epoch:
        return config.learning_rate
    total = max(1, config.epochs * steps_per_epoch)
    warmup = int(config.warmup_epochs * steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate if warmup == 0 else config.learning_rate * 0.01,
        decay_steps=max(1, total - warmup),
        alpha=0.01,
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def _jit(value):
    value = str(value).lower()
    return {"true": True, "false": False, "auto": "auto"}[value]


def sources(config, source=None):
    """The train and validation examples of `config`, decoded, resized and cached (`pipeline.cached_examples`).

    `source`: the `data.sources.Source` of `config.data` already resolved (read once for
    the whole command); default, or when it is another data's: resolved here.
    """
    from locnet_tf.data import pipeline
    from locnet_tf.data import sources as sources_lib

    source = sources_lib.for_config(config, source)
    common = dict(image_size=config.image_size, resize=config.resize, cache=config.cache)
    return {split: pipeline.cached_examples(source, split, **common) for split in ("train", "validation")}


def datasets(config, global_batch, crop=None, cached=None):
    """Train and validation datasets for `config` (class names on `.class_names`).

    `crop`: None, or the size of the windows `pipeline.crop_around_object` cuts
    from both splits (progressive resizing's `crop` mode). `cached`: the
    `sources(config)` to build on (pipelines built on the same ones decode
    the images once); default: new ones.
    """
    from locnet_tf.data import pipeline

    cached = cached or sources(config)
    common = dict(image_size=config.image_size, batch_size=global_batch, seed=config.seed, crop=crop)
    train_ds = pipeline.make_dataset(config.data, "train", augment=config.augment, source=cached["train"], **common)
    val_ds = pipeline.make_dataset(
        config.data, "validation", augment=False, shuffle=False, source=cached["validation"], **common
    )
    if train_ds.class_names != val_ds.class_names:
        raise ValueError(
            f"train and validation splits disagree on classes: {train_ds.class_names} vs {val_ds.class_names}"
        )
    # Multi-worker runs shard by element: our sources are few files (often one
    # TFRecord per split), too few for tf.data's default FILE sharding.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    names = train_ds.class_names
    train_ds, val_ds = train_ds.with_options(options), val_ds.with_options(options)
    train_ds.class_names = val_ds.class_names = names
    return train_ds, val_ds


def train(config, out="runs/latest", verbose="auto", overwrite=False, extra_callbacks=(), source=None):
    """Trains, keeps the best model, calibrates and evaluates it.

    Args:
        config: `Config`.
        out: str. The run folder. If it holds an unfinished run with the same
            config, training resumes from its last finished epoch.
        verbose: Keras `fit` verbosity (`"auto"` shows progress bars).
        overwrite: bool. Start afresh in a run folder that holds another config.
        extra_callbacks: more Keras callbacks (tests use this to interrupt a run).
        source: the `data.sources.Source` of `config.data` if the caller resolved it
            already (`config_and_source`); default: resolved here. The datasets, the
            test-split check, calibration and evaluation all read this one.

    Returns:
        dict with `run_dir`, `model_path`, `history` (per-epoch lists),
        `report` (test evaluation or None) and `seconds`.

    Raises:
        OSError: EBUSY, another training writes the run folder (`runs.locked`);
            ENOSPC, the disk filled (the same call resumes once there is space).
    """
    with contextlib.ExitStack() as held:  # the run folder's lock, released when training ends
        return _train(config, out, verbose, overwrite, extra_callbacks, held, source)


def check_config(config, relations=True):
    """`config.validate`, then whether a `--weights` file fits its backbone (`weights_check`): every
    error a config can hold, before any data is read. Returns `config`."""
    config_lib.validate(config, relations=relations)
    weights_check.check_config(config)
    return config


def _train(config, out, verbose, overwrite, extra_callbacks, held, source=None):
    start = time.time()
    check_config(config)  # every field's range and choices, before anything is read or built
    first_epoch = progressive_epochs(config)  # checks the settings
    run_dir = pathlib.Path(out)
    # A new or empty folder, or a run folder (resumed), holding none of the data; --init is read before any change.
    outputs.claim_folder(run_dir, "train", outputs.data_inputs(config.data, config.data_dir))
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    strategy = make_strategy(config.strategy)
    # Multi-worker: only the chief writes the run folder (tf.distribute decides which).
    chief = strategy.extended.should_checkpoint
    # Non-chief workers of a multi-worker run write their (identical) files to a
    # scratch folder, as the tf.distribute guide prescribes.
    work_dir = run_dir if chief else run_dir / f".worker_{strategy.cluster_resolver.task_id}"
    work_dir.mkdir(parents=True, exist_ok=True)
    if chief:  # marked first: a kill at any later point leaves a folder train recognises
        outputs.mark_folder(work_dir, "train")
    held.enter_context(runs.locked(work_dir))  # one training at a time writes a run folder
    runs.remove_partials(work_dir)  # what a killed training was writing: never a finished file
    # The start model, in memory before --overwrite clears the folder: `--init RUN --out RUN` fine-tunes in place.
    init = _load_init(config)
    runs.check_run_folder(work_dir, config, overwrite)
    config.save(work_dir / runs.CONFIG)

    keras.utils.set_random_seed(config.seed)
    from locnet_tf.data import sources as sources_lib

    source = sources_lib.for_config(config, source)  # the data spec resolved once for the whole run
    cached = sources(config, source)
    train_ds, val_ds = datasets(config, config.batch_size, cached=cached)
    # Known before training, not after it: a source without a test split (a YOLO
    # data.yaml with only train and val) trains, and the report is skipped.
    evaluate_test = config.evaluate and _has_test_split(source, train_ds.class_names, chief and verbose != 0)
    batches = _steps(train_ds)
    steps_per_epoch = config.steps_per_epoch or batches
    hint = augmentation_hint(config, batches)
    if hint and chief and verbose != 0:
        print(hint)
    schedule = _learning_rate(config, steps_per_epoch)

    loss = losses_lib.LocalizationLoss(
        mode=config.loss_mode,
        box_loss=config.box_loss,
        pc_weight=config.pc_weight,
        box_weight=config.box_weight,
        class_weight=config.class_weight,
        label_smoothing=config.label_smoothing,
    )
    # The checkpoint saves the model itself, not a MapSupervision wrapper (see BestCheckpoint.set_model).
    trainer = _build_trainer(
        config, strategy, train_ds.class_names, loss, schedule, init=init, steps_per_epoch=steps_per_epoch
    )
    # model.keras, its partial copy while saved, the backup: each about the weights and optimizer state.
    outputs.check_free_space(work_dir, 3 * state_bytes(trainer) + 16_000_000, "the run folder")
    if init is not None and chief and verbose != 0:
        summary = transfer.plan(losses_lib.model_of(trainer), init)
        print(transfer.describe(summary, config.init, model_lib.class_names(init), train_ds.class_names))

    history_path = str(work_dir / runs.HISTORY)
    model_path = str(work_dir / runs.MODEL)
    backup_dir = work_dir / runs.BACKUP

    def logging_callbacks(image_size):
        # With progressive resizing every row of history.csv says its input size.
        size = [LogValue("image_size", image_size)] if first_epoch else []
        return size + [
            HistoryCSV(history_path),
            keras.callbacks.TensorBoard(str(work_dir / "logs")),
            CurvesPlot(history_path, str(work_dir / "curves.png")),
        ]

    callbacks = [
        SelectionScore(),  # first: the checkpoint and early stopping watch the score it adds
        StopOnCtrlC(),
        keras.callbacks.TerminateOnNaN(),
        # Before the EMA swap: the backup holds the weights being trained, not their average.
        AtomicBackup(str(backup_dir), delete_checkpoint=True),
        *_ema_callbacks(config),
        BestCheckpoint(
            model_path,
            monitor=BEST_METRIC,
            mode="max",
            save_best_only=True,
            # A resumed run keeps the best model it had (history.csv says its score).
            initial_value_threshold=runs.best_so_far(work_dir, BEST_METRIC, "max", first_epoch=first_epoch),
        ),
        *logging_callbacks(config.image_size),
    ]
    if config.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor=BEST_METRIC, mode="max", patience=config.early_stopping_patience)
        )
    callbacks.extend(extra_callbacks)
    if runs.is_finished(work_dir):
        # BackupAndRestore removes its state only when fit() ends normally: do not train it again.
        print(f"{run_dir} holds a finished run; calibrating and evaluating its model again.")
    else:
        if first_epoch:
            _train_small_first(
                config,
                first_epoch,
                strategy,
                trainer,
                schedule,
                loss,
                train_ds.class_names,
                backup_dir,
                cached,
                init,
                [
                    SelectionScore(),  # recorded in history.csv; these epochs are never saved
                    keras.callbacks.TerminateOnNaN(),
                    *_ema_callbacks(config),
                    *logging_callbacks(config.progressive_size),
                    *extra_callbacks,
                ],
                verbose,
            )
        _fit(trainer, config, train_ds, val_ds, first_epoch, config.epochs, callbacks, verbose)
    result = {
        "run_dir": str(run_dir),
        "model_path": str(run_dir / runs.MODEL),
        "history": runs.read_history(history_path),
        "report": None,
    }
    if chief:
        result["report"] = _finish(config, run_dir, verbose, evaluate_test, source)
    else:
        shutil.rmtree(work_dir, ignore_errors=True)
    result["seconds"] = time.time() - start
    return result


def _load_init(config):
    """The `--init` model, or None; its architecture must be the config's (`transfer.architecture`)."""
    if not config.init:
        return None
    init = transfer.load(config.init)
    theirs = transfer.architecture(init)
    differ = [
        f
        for f in transfer.ARCHITECTURE_FIELDS
        if f != "dropout" and theirs[f] is not None and theirs[f] != getattr(config, f)
    ]
    if differ:
        shown = ", ".join(f"{f} {theirs[f]} (config: {getattr(config, f)})" for f in differ)
        raise ValueError(
            f"--init {config.init} has another architecture: {shown}. Leave those flags out "
            "(the command line takes them from the --init model) or start from scratch."
        )
    return init


def _build_trainer(config, strategy, class_names, loss, schedule, image_size=None, init=None, steps_per_epoch=None):
    """The model for `config` at `image_size` (default: its own), compiled for training in `strategy`.

    At another size than `config.image_size` (progressive resizing's small
    model) the box sizes are scaled by `config.image_size / image_size`.
    `init`: a loaded model whose weights it starts from (`transfer.init_weights`).
    `steps_per_epoch`: for the epochs of `config.freeze_backbone_epochs`.
    """
    image_size = image_size or config.image_size
    kwargs = dict(config.model_kwargs(), image_size=image_size)
    with strategy.scope():
        model = model_lib.build_model(
            class_names=class_names, size_scale=config.image_size / image_size, resize=config.resize, **kwargs
        )
        if init is not None:
            transfer.init_weights(model, init)
        # AdamW; a pretrained backbone trains after the new layers' warm-up, and slower (locnet_tf.model.finetune).
        optimizer = finetune.make_optimizer(model, config, schedule, steps_per_epoch)
        trainer = compile_for_training(model, config, loss, optimizer, _jit(config.jit_compile))
    patch_multi_worker(trainer, strategy)
    return trainer


def _ema_callbacks(config):
    """With `config.ema`: validation and checkpoints see the weights' moving average (Keras's own swap)."""
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if config.ema > 0 else []


def _fit(trainer, config, train_ds, val_ds, initial_epoch, epochs, callbacks, verbose):
    trainer.fit(
        train_ds.repeat() if config.steps_per_epoch else train_ds,
        validation_data=val_ds,
        initial_epoch=initial_epoch,
        epochs=epochs,
        steps_per_epoch=config.steps_per_epoch,
        validation_steps=config.validation_steps,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the dataset shuffles itself
    )


def _train_small_first(
    config, small_epochs, strategy, trainer, schedule, loss, class_names, backup_dir, cached, init, callbacks, verbose
):
    """Progressive resizing's first epochs, at `config.progressive_size`; then carries them over to `trainer`.

    The small model is `build_model` at the smaller size with the same layers,
    its box sizes scaled by `image_size / progressive_size` (see `size_scale`),
    and its own optimizer on the same learning-rate schedule. Its backup lives
    in `backup/progressive/` and is kept until the whole run ends, so a run
    killed after these epochs does not train them again; once the full-size
    epochs have a backup of their own, these are skipped altogether.
    """
    if backup_dir.exists() and any(path.name != SMALL_BACKUP for path in backup_dir.iterdir()):
        return  # the full-size epochs have begun; their BackupAndRestore resumes them
    if config.progressive_mode == "crop":
        # The full-size images the later epochs read: decoded and cached once for both phases.
        train_ds, val_ds = datasets(config, config.batch_size, crop=config.progressive_size, cached=cached)
    else:
        train_ds, val_ds = datasets(dataclasses.replace(config, image_size=config.progressive_size), config.batch_size)
    small_trainer = _build_trainer(
        config, strategy, class_names, loss, schedule, image_size=config.progressive_size, init=init
    )
    if verbose != 0:
        print(describe_progressive(config, small_epochs))
    backup = AtomicBackup(str(backup_dir / SMALL_BACKUP), run_dir=backup_dir.parent, delete_checkpoint=False)
    _fit(small_trainer, config, train_ds, val_ds, 0, small_epochs, [backup, *callbacks], verbose)
    if small_trainer.stop_training:  # TerminateOnNaN
        raise RuntimeError(
            f"Training stopped in the first {small_epochs} epochs at {config.progressive_size} px "
            f"(non-finite loss); see {backup_dir.parent / 'history.csv'}."
        )
    with strategy.scope():
        carry_over(small_trainer, trainer)


def _has_test_split(source, class_names, say):
    """Whether `source` (a `data.sources.Source`) has test images; if not, `say` prints what happens instead."""
    from locnet_tf.data import pipeline
    from locnet_tf.core.errors import EmptySplitError

    try:
        pipeline.examples(source, "test", class_names=class_names)
    except EmptySplitError as error:
        if say:
            print(
                f"{error} Training goes on; the test report is skipped. Evaluate another split "
                "afterwards with `python -m locnet_tf.evaluate RUN/model.keras --split validation` "
                "(the threshold is calibrated on it, so its figures run high)."
            )
        return False
    return True


def _finish(config, run_dir, verbose, evaluate_test, source=None):
    """Calibrates the best model's presence threshold and, if `evaluate_test`, evaluates it on the test split."""
    from locnet_tf.evaluate import run as evaluate_lib
    from locnet_tf.evaluate import __main__ as evaluate_main
    from locnet_tf.evaluate import calibration as calibration_lib

    model_path = run_dir / runs.MODEL
    quiet = verbose == 0
    if config.calibrate:
        notes = []  # a split too small to calibrate on says so instead
        threshold = calibration_lib.calibrate(str(model_path), data=source, config=config, notice=notes.append)
        if not quiet:
            calibrated = f"Presence threshold calibrated on validation data: {threshold:.3f} (stored in {model_path})"
            print(*notes or [calibrated])
    if not evaluate_test:
        return None
    report = evaluate_lib.evaluate(
        str(model_path),
        data=source or config.data,
        split="test",
        out=str(run_dir / runs.REPORT),
        config=config,
        calibrated=config.calibrate,
    )
    if not quiet:
        print(evaluate_main.format_report(report))
    return report


def config_and_source(args, notice=print):
    """`config_from_args`, and the `data.sources.Source` of its data: resolved once here, read
    (if at all) by the recipe, and handed on to `train(source=...)` so nothing reads it again."""
    from locnet_tf.data import sources as sources_lib

    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(config_lib.Config)
        if getattr(args, f.name, None) is not None
    }
    # The flags themselves, before the recipe reads the data.
    flags = check_config(config_lib.Config(**given), relations=False)
    source = sources_lib.for_config(flags)  # nothing is read until the recipe or training needs it
    config = check_config(recipe.resolve(args.preset, given, notice=notice, source=source))
    return config, sources_lib.for_config(config, source)
