# The Kernel services image: the `kernel` CLI and every worker.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY streams streams
COPY projections projections
COPY replay replay
COPY ops ops
RUN pip install --no-cache-dir .
RUN useradd --system --home /var/lib/kernel kernel && mkdir -p /var/lib/kernel/keys \
    && chown -R kernel /var/lib/kernel && chmod 700 /var/lib/kernel/keys
USER kernel
ENV KERNEL_STATE_DIR=/var/lib/kernel
ENTRYPOINT ["kernel"]
CMD ["--help"]
