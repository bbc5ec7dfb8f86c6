# inferd in a container: `docker build -t inferd .`, then
#   docker run -p 8000:8000 -e INFERD_API_KEY=change-me inferd
# serves the example repository baked in at /models; mount your own over it with
#   docker run -p 8000:8000 -e INFERD_API_KEY=change-me -v "$PWD/my_models:/models:ro" inferd
# The store (prediction log, feedback, action outbox) is written to the volume
# /var/lib/inferd. docs/deploy.md says more (Docker and KServe).
#
# The base install serves ONNX models (every example but pycoder). Left out unless added with
# --build-arg EXTRAS=...: torch (task: generation models, e.g. pycoder; the baked pycoder is
# removed from /models without it), monitor (fairness figures, OpenTelemetry tracing, NVIDIA
# energy), postgres (--store postgresql://...). E.g. --build-arg EXTRAS=torch,monitor.
# pip's own settings pass through as build args too, e.g. --build-arg PIP_INDEX_URL=...

# --- builder: the wheel, installed with its dependencies into a virtual environment --------
FROM python:3.11-slim AS builder

ARG EXTRAS=""
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/inferd \
    && /opt/inferd/bin/pip wheel --no-deps --wheel-dir /build/wheels . \
    && wheel="$(ls /build/wheels/inferd-*.whl)" \
    && /opt/inferd/bin/pip install "${wheel}${EXTRAS:+[$EXTRAS]}"

# --- runtime: the same Python (the venv links to it), no compilers, a non-root user --------
FROM python:3.11-slim

ENV PATH=/opt/inferd/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can check it and a mounted volume's
# owner can be set to match.
RUN groupadd --system --gid 10001 inferd \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/inferd \
        --shell /usr/sbin/nologin inferd \
    && install -d -o 10001 -g 10001 /var/lib/inferd

COPY --from=builder /opt/inferd /opt/inferd
# The example repository, owned by root and read-only to the server; mount yours over it.
COPY model_repository /models
RUN if ! python -c "import torch" 2>/dev/null; then \
        for spec in /models/*/model.yaml; do \
            if grep -Eq '^backend:[[:space:]]*torch' "$spec"; then rm -rf "$(dirname "$spec")"; fi; \
        done; \
    fi

WORKDIR /var/lib/inferd
VOLUME ["/var/lib/inferd"]
USER 10001:10001
EXPOSE 8000

# Ready once every model has a version serving; health routes need no API key.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=4)"]

# 0.0.0.0 without an API key is refused: pass -e INFERD_API_KEY=..., or, behind a proxy that
# authenticates, override the command with --insecure (KServe's runtime does).
ENTRYPOINT ["inferd", "serve"]
CMD ["/models", "--host", "0.0.0.0", "--port", "8000", "--data-dir", "/var/lib/inferd"]
