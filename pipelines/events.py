"""Names shared between flows, deployments and event triggers (also written in infra/prefect.yaml)."""

DRIFT_EVENT = "medpipe.drift.detected"
TRAINING_DEPLOYMENT = "training/training-weekly"  # <flow name>/<deployment name>, also in infra/prefect.yaml
