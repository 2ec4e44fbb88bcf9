"""Scale-out training: `tf.distribute` strategies by name, and a Keras work-around for multi-worker.

`make_strategy("default" | "mirrored" | "multi_worker")` is what `--strategy`
selects. `patch_multi_worker(trainer, strategy)` works around two Keras bugs
that stop `Model.fit` under `MultiWorkerMirroredStrategy`; it replaces Keras
private functions, so it is written for one Keras version (`KERAS_CHECKED`):
on another it warns, and it raises if the private names it replaces are gone.
`tests/test_distribute.py` fails on a Keras upgrade until someone has checked
whether the work-around is still needed (run the multi-worker test) and
updated `KERAS_CHECKED` or removed it.
"""

import os
import warnings

import keras
import tensorflow as tf

# The Keras (major, minor) the work-around was written and tested for.
KERAS_CHECKED = (3, 15)


def make_strategy(name):
    """A `tf.distribute` strategy by name.

    - `default`: the default (single-device) strategy.
    - `mirrored`: `MirroredStrategy` over every local GPU, or every logical CPU
      device when there is no GPU.
    - `multi_worker`: `MultiWorkerMirroredStrategy`, cluster read from `TF_CONFIG`.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multi_worker needs the TF_CONFIG environment variable (see README).")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}; choose default, mirrored or multi_worker.")


def keras_version():
    """The installed Keras's (major, minor)."""
    return tuple(int(part) for part in keras.__version__.split(".")[:2])


def _keras_trainer_module():
    """Keras's TensorFlow trainer module, checked to have what the work-around replaces."""
    from keras.src.backend.tensorflow import trainer as keras_tf_trainer

    if not callable(getattr(keras_tf_trainer, "reduce_per_replica", None)):
        raise RuntimeError(
            f"Keras {keras.__version__} has no keras.src.backend.tensorflow.trainer.reduce_per_replica: "
            f"locnet_tf.train.distribute.patch_multi_worker (written for Keras {KERAS_CHECKED[0]}.{KERAS_CHECKED[1]}) "
            "must be revised for this Keras."
        )
    return keras_tf_trainer


def patch_multi_worker(trainer, strategy):
    """Lets `trainer.fit` run under `MultiWorkerMirroredStrategy` (Keras 3.15, TF 2.21); else does nothing.

    Before training, Keras builds the model from one batch that it averages
    over replicas with a single `strategy.reduce("MEAN", (x, y))`. Mirrored
    strategies take nested values there; the collective all-reduce of
    `MultiWorkerMirroredStrategy` does not, and fit() dies with "Attempt to
    convert a value (PerReplica...)". Here the batch is reduced one tensor at
    a time (the same collective ops, in the same order on every worker) and the
    result handed to Keras's own build (`trainer._maybe_symbolic_build`).

    Each step's logs then meet a second bug (tensorflow/tensorflow#72388): under
    multi-worker Keras averages the per-replica *scalar* metric values with
    `strategy.reduce("MEAN", v, axis=0)`, which has no axis 0. Scalars are
    reduced with `axis=None` instead; everything else goes to Keras unchanged.
    This replaces `keras.src.backend.tensorflow.trainer.reduce_per_replica` for
    the process (once; the original stays at `__wrapped__`).

    Raises:
        RuntimeError: this Keras lacks the private functions replaced here.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    keras_tf_trainer = _keras_trainer_module()
    if not hasattr(trainer, "_maybe_symbolic_build"):
        raise RuntimeError(
            f"Keras {keras.__version__} models have no _maybe_symbolic_build: "
            "locnet_tf.train.distribute.patch_multi_worker must be revised for this Keras."
        )
    if keras_version() != KERAS_CHECKED:
        warnings.warn(
            f"locnet_tf's multi-worker work-around was written for Keras {KERAS_CHECKED[0]}.{KERAS_CHECKED[1]}, "
            f"this is {keras.__version__}; check whether it is still needed (tests/test_distribute.py).",
            stacklevel=2,
        )

    keras_reduce = getattr(keras_tf_trainer.reduce_per_replica, "__wrapped__", keras_tf_trainer.reduce_per_replica)

    def reduce_per_replica(values, strategy_, reduction):
        def one(v):
            local = v.values[0] if isinstance(v, tf.distribute.DistributedValues) else v
            if reduction in ("auto", "mean") and getattr(local, "shape", None) is not None and local.shape.rank == 0:
                return strategy_.reduce("MEAN", v, axis=None)
            return keras_reduce(v, strategy_, reduction)

        return tf.nest.map_structure(one, values)

    reduce_per_replica.__wrapped__ = keras_reduce
    keras_tf_trainer.reduce_per_replica = reduce_per_replica
    keras_build = trainer._maybe_symbolic_build

    def reduce(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.reduce("MEAN", value, axis=None)
        return value

    def build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(reduce, next(it))
                break
        return keras_build(iterator=None, data_batch=data_batch)

    trainer._maybe_symbolic_build = build
