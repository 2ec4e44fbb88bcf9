"""Floor 5 of docs/architecture.md: data -> model -> fit.

    python -m locnet_tf.train --data SPEC --out RUN_DIR

`run` (the training, top to bottom; `train`), `recipe` (the default recipe, chosen from the data),
`transfer` (`--init`), `pretrained` (building the shipped start), `callbacks`, `progressive`,
`distribute`. `train` loads on first use (it imports TensorFlow), so that `python -m
locnet_tf.train` reaches `__main__`, whose first import says what to install when it is missing.
"""

__all__ = ["train"]


def __getattr__(name):
    # PEP 562: the public name from its module, imported on first use.
    if name == "train":
        from locnet_tf.train.run import train

        return train
    raise AttributeError(f"module 'locnet_tf.train' has no attribute {name!r}")
