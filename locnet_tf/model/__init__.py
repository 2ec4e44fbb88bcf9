"""Floor 2 of docs/architecture.md: the Keras core (target, boxes, layers, network, losses, metrics).

Importing it registers the model's layers (`layers`: `locnet_tf>TargetVector`,
`locnet_tf>SoftArgmaxBox`) and the fine-tuning optimizer (`finetune`), so import it before
`keras.models.load_model("model.keras")` in your own code.
"""

from locnet_tf.model.network import build_model, class_names, compile_model, layout, presence_threshold

__all__ = ["build_model", "class_names", "compile_model", "layout", "presence_threshold"]
