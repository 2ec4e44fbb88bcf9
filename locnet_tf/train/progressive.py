"""Progressive resizing: the first epochs at a smaller input, then the full-size model.

With `--progressive-share 0.75 --progressive-size 96` (the default preset) the
first 75% of the epochs train a copy of the model at 96 px, on windows of the
images at their own scale (`--progressive-mode crop`) or on the images shrunk
(`resize`); its weights and optimizer state then carry over to the full-size
model (`carry_over`) for the remaining epochs. `locnet_tf.train` runs the two
phases; history.csv records each epoch's `image_size`.
"""

from locnet_tf.model import losses as losses_lib

# Folder in the run's backup/ for the small-input epochs.
SMALL_BACKUP = "progressive"


def progressive_epochs(config, notice=print):
    """How many of the first epochs train at `config.progressive_size` (0: none).

    `progressive_share` of the epochs, rounded down. Settings that cannot work
    raise; where progressive resizing does not apply (the dense head, whose
    weights depend on the input size, or an input no larger than
    `progressive_size`) it is off, and `notice` says so.
    """
    share, size = config.progressive_share, config.progressive_size
    if not 0.0 <= share < 1.0:
        raise ValueError(f"--progressive-share must be in [0, 1) (a share of the epochs), got {share}.")
    if share == 0.0:
        return 0
    if size <= 0:
        raise ValueError(f"--progressive-share {share} needs a --progressive-size above 0, got {size}.")
    if config.head != "spatial":
        notice("Progressive resizing is off: the dense head's weights depend on the input size.")
        return 0
    if config.progressive_mode not in ("resize", "crop"):
        raise ValueError(f"--progressive-mode must be 'resize' or 'crop', got {config.progressive_mode!r}.")
    if size >= config.image_size:
        notice(f"Progressive resizing is off: --progressive-size {size} is not below --image-size {config.image_size}.")
        return 0
    return int(share * config.epochs + 1e-9)


def describe(config, small_epochs):
    """One line saying which epochs train at which size."""
    seen = "windows of the full-size images" if config.progressive_mode == "crop" else "images shrunk"
    return (
        f"Progressive resizing: epochs 1-{small_epochs} at {config.progressive_size} px ({seen}), "
        f"then {small_epochs + 1}-{config.epochs} at {config.image_size} px."
    )


def carry_over(source, target):
    """Copies weights and optimizer state from one trainer to another of the same layers.

    Every layer's weights (by name; the input size changes no weight shape in
    a spatial-head model) and every optimizer variable (its moments and step
    count, by variable path) carry over, so the learning-rate schedule and
    Adam's moments continue where they were. Hand-written because Keras has no
    call for this: `set_weights` is by position, and the models' layer orders
    differ by the small model's size-scaling layer.

    Args:
        source, target: `train.run.compile_for_training` results (models or their
            `MapSupervision` wrappers). Call inside the strategy's scope.
    """
    source_model, target_model = losses_lib.model_of(source), losses_lib.model_of(target)
    for layer in target_model.layers:
        if layer.weights:
            layer.set_weights(source_model.get_layer(layer.name).get_weights())
    if not target.optimizer.built:
        target.optimizer.build(target.trainable_variables)

    def key(variable):  # the path without the optimizer's own (unique) name
        return variable.path.split("/", 1)[-1]

    state = {key(v): v for v in source.optimizer.variables}
    missing = sorted(key(v) for v in target.optimizer.variables if key(v) not in state)
    if missing or len(state) != len(target.optimizer.variables):
        raise ValueError(f"The two models' optimizer states differ (missing: {missing[:5]}).")
    for variable in target.optimizer.variables:
        variable.assign(state[key(variable)])
