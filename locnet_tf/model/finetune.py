"""Fine-tuning a pretrained backbone: the new layers first, the pretrained ones slower.

What works when a network that learned on ImageNet meets a few hundred photos
(measured in docs/real_photos.md, "EfficientNet-Lite0"):

- a warm-up in which only the new layers (the fusion, box, presence and class
  heads) train, while the backbone is held still: a head that starts random
  sends large, meaningless gradients into the pretrained features and wrecks
  them in the first steps (`freeze_backbone_epochs`);
- after it, the pretrained layers learn at a fraction of the heads' rate
  (`backbone_lr_scale`), and are not pulled towards zero by weight decay (their
  values are the knowledge, not noise);
- the backbone's BatchNorm stays in inference mode throughout (built frozen in
  `locnet_tf.model`);
- the first blocks (the photos preset: stem and stages 1-2, strides 2 and 4:
  edges and textures, the same for any photo) stay as they are
  (`backbone_frozen_blocks`): no gradient flows into them, which saves a
  CPU the depthwise convolutions' backward pass at the highest resolutions,
  where they cost the most. Freezing stage 3 (stride 8) too made training
  10-25% faster still, but scored a little lower on each of three sets
  (docs/real_photos.md, fourth session).

`FineTuneAdamW` does the first two inside one optimizer, so training stays one
`fit` with one compiled step: the backbone's update is AdamW's with the
learning rate multiplied by 0 during the warm-up and by `backbone_lr_scale`
after it. Keras optimizers have no per-variable learning rate of their own.
"""

import keras
from keras import ops

# Layers whose variables are the pretrained backbone's (`locnet_tf.model.efficientnet_lite.PREFIX`).
BACKBONE_PREFIXES = ("lite0_",)


def is_backbone(variable):
    return variable.path.startswith(BACKBONE_PREFIXES)


@keras.saving.register_keras_serializable(package="locnet_tf")
class FineTuneAdamW(keras.optimizers.AdamW):
    """AdamW whose backbone variables learn at `backbone_lr_scale` of the rate, after `freeze_steps` at 0.

    Args:
        backbone_lr_scale: float. The backbone's learning rate relative to the
            schedule's, once the warm-up is over.
        freeze_steps: int. Optimizer steps at the start in which the backbone
            does not move (only the new layers train).
        **kwargs: `keras.optimizers.AdamW`'s arguments.

    Backbone variables (`BACKBONE_PREFIXES`) get no weight decay.
    """

    def __init__(self, backbone_lr_scale=0.1, freeze_steps=0, **kwargs):
        super().__init__(**kwargs)
        self.backbone_lr_scale = float(backbone_lr_scale)
        self.freeze_steps = int(freeze_steps)
        self._backbone = []

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._backbone = [is_backbone(v) for v in var_list]

    def _is_backbone(self, variable):
        return self._backbone[self._get_variable_index(variable)]

    def update_step(self, gradient, variable, learning_rate):
        if self._is_backbone(variable):
            thawed = ops.cast(ops.greater_equal(self.iterations, self.freeze_steps), "float32")
            learning_rate = learning_rate * ops.cast(thawed * self.backbone_lr_scale, learning_rate.dtype)
        return super().update_step(gradient, variable, learning_rate)

    def _use_weight_decay(self, variable):
        if self._is_backbone(variable):
            return False
        return super()._use_weight_decay(variable)

    def get_config(self):
        config = super().get_config()
        config.update(backbone_lr_scale=self.backbone_lr_scale, freeze_steps=self.freeze_steps)
        return config


def has_backbone(model):
    """Whether `model` has pretrained-backbone layers that `FineTuneAdamW` treats apart."""
    return any(layer.name.startswith(BACKBONE_PREFIXES) for layer in model.layers)


def freeze_blocks(model, count):
    """Makes the stem and the first `count` Lite0 blocks of `model` untrainable; returns the layers frozen."""
    import re

    frozen = []
    for layer in model.layers:
        match = re.match(r"lite0_(stem|b(\d+))_", layer.name)
        if match and (match.group(1) == "stem" or int(match.group(2)) < count) and layer.weights:
            layer.trainable = False
            frozen.append(layer.name)
    return frozen


def make_optimizer(model, config, schedule, steps_per_epoch):
    """AdamW for `config`; `FineTuneAdamW` when `model` has a pretrained backbone to fine-tune.

    The backbone counts as pretrained when it was loaded (`config.weights`) or
    is carried over from another model (`config.init`); then its first
    `config.backbone_frozen_blocks` blocks are frozen too (call this before
    compiling).
    """
    common = dict(
        learning_rate=schedule,
        weight_decay=config.weight_decay,
        use_ema=config.ema > 0,
        ema_momentum=config.ema or 0.99,
    )
    if not has_backbone(model) or (config.weights is None and config.init is None):
        return keras.optimizers.AdamW(**common)
    if config.backbone_frozen_blocks:
        freeze_blocks(model, config.backbone_frozen_blocks)
    freeze_steps = int(round(config.freeze_backbone_epochs * (steps_per_epoch or 0)))
    return FineTuneAdamW(backbone_lr_scale=config.backbone_lr_scale, freeze_steps=freeze_steps, **common)
