# One image for all four services; the command picks the service and its role:
#   docker run ... vuonminh:dev serve orders --role api      (api | worker | all)
#   docker run ... vuonminh:dev db upgrade orders             (migrations)
#   docker run ... vuonminh:dev topics create                 (the admin step that creates topics)
# Needs KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL (and VUONMINH_SECRETS_KEY for orders' API).
#
# Two stages: `build` installs the project into a virtualenv at /opt/vuonminh with the versions of
# requirements.lock (runtime dependencies only: no test tools); `runtime` copies that virtualenv
# onto a clean base and runs as an unprivileged user. tests/test_packaging.py runs the RUN steps of
# `build` in a clean virtualenv and checks that they install exactly the project's runtime tree.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/vuonminh
WORKDIR /src
# Dependencies first, so that a source-only change reuses this layer: the direct dependencies named
# in pyproject.toml, every version (transitive ones too) held to requirements.lock.
COPY pyproject.toml README.md requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > runtime-requirements.txt \
 && /opt/vuonminh/bin/pip install --only-binary=:all: -c requirements.lock -r runtime-requirements.txt
COPY shared ./shared
COPY wiring ./wiring
COPY services ./services
# The project itself; its dependencies are in already (--no-deps keeps it that way).
RUN /opt/vuonminh/bin/pip install --no-deps .

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/vuonminh/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VUONMINH_LOG_JSON=true \
    VUONMINH_DATA_DIR=/tmp/vuonminh
RUN groupadd --system --gid 10001 vuonminh \
 && useradd --system --uid 10001 --gid vuonminh --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin vuonminh
COPY --from=build /opt/vuonminh /opt/vuonminh
# Numeric, so that Kubernetes' runAsNonRoot can check it without resolving a name.
USER 10001:10001
# Nothing is written outside /tmp: the root filesystem may be read-only (deploy/k8s mounts /tmp).
WORKDIR /tmp
EXPOSE 8000

# Liveness only (readiness needs Kafka and PostgreSQL); compose checks /readyz, Kubernetes probes both.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

ENTRYPOINT ["vuonminh"]
CMD ["serve", "orders", "--role", "all"]
