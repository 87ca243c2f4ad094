# One image for all four services; pick one with the command:
#   docker run ... vuonminh serve catalog|orders|logistics|analytics
# Needs KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL (and VUONMINH_SECRETS_KEY for orders).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VUONMINH_LOG_JSON=true \
    VUONMINH_DATA_DIR=/home/vuonminh/data

RUN groupadd --system --gid 10001 vuonminh \
 && useradd --system --uid 10001 --gid vuonminh --create-home --home-dir /home/vuonminh \
        --shell /usr/sbin/nologin vuonminh

WORKDIR /src

# Dependencies first, so that a source-only change reuses this layer. The globs keep the COPY
# valid whether or not the lock file (and the README named in pyproject.toml) exist yet.
COPY pyproject.toml README.md* requirements.lock* ./
RUN if [ -f requirements.lock ]; then pip install --no-cache-dir -r requirements.lock; fi

COPY shared ./shared
COPY wiring ./wiring
COPY services ./services
# With the lock the dependencies are already in: install only the project itself.
RUN if [ -f requirements.lock ]; then pip install --no-cache-dir --no-deps .; \
    else pip install --no-cache-dir .; fi \
 && rm -rf /src/build /src/*.egg-info

USER vuonminh
WORKDIR /home/vuonminh

EXPOSE 8000

# Liveness only (readiness needs Kafka and PostgreSQL); compose overrides it with /readyz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

ENTRYPOINT ["vuonminh"]
CMD ["serve", "orders"]
