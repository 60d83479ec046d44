"""Serving: FastAPI app, ONNX Runtime model source, micro-batching, inference log, batch prediction."""
