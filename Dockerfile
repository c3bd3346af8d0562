# One image for every process; the command picks ingest, api or workers.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ingest ingest
COPY api api
COPY workers workers
COPY shared shared
COPY webhooks webhooks
RUN pip install --no-cache-dir .
ENV PYTHONUNBUFFERED=1 BIND_HOST=0.0.0.0
USER nobody
CMD ["python", "-m", "api"]
