#!/usr/bin/env bash
# Create medpipe's Prefect work pools, the `gpu` global concurrency limit, and the deployments of
# infra/prefect.yaml on the Prefect server at PREFECT_API_URL. Safe to run again (updates in place).
#   MEDPIPE_TRAINING_POOL  pool for the training-weekly deployment (default medpipe-k8s; compose: medpipe-process)
#   MEDPIPE_GPU_SLOTS      slots of the `gpu` concurrency limit (default 1: one GPU job at a time)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${PREFECT_API_URL:?set PREFECT_API_URL to your Prefect server, e.g. http://127.0.0.1:4200/api}"
training_pool="${MEDPIPE_TRAINING_POOL:-medpipe-k8s}"
gpu_slots="${MEDPIPE_GPU_SLOTS:-1}"

prefect work-pool create medpipe-process --type process --overwrite
if [[ "${training_pool}" == "medpipe-k8s" ]]; then
  prefect work-pool create medpipe-k8s --type kubernetes \
    --base-job-template infra/k8s/prefect-gpu-job-template.json --overwrite
fi

if prefect gcl inspect gpu >/dev/null 2>&1; then
  prefect gcl update gpu --limit "${gpu_slots}"
else
  prefect gcl create gpu --limit "${gpu_slots}"
fi

prefect --no-prompt deploy --prefect-file infra/prefect.yaml \
  --name monitoring-nightly --name training-cpu --name data --name deployment --name pipeline
prefect --no-prompt deploy --prefect-file infra/prefect.yaml --name training-weekly --pool "${training_pool}"
