"""One evaluation of the served model: its exported ONNX graph run through ONNX Runtime, at its stored operating
point. The :class:`~components.evaluation.evaluate.EvaluationResult` feeds the MLflow run, the version tags, the
promotion gate, the model card, the DVC metrics and the summaries alike."""
