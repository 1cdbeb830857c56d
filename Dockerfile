# syntax=docker/dockerfile:1
# The hoop-sessions code location for Dagster on Kubernetes: the user-code deployment serves
# pipelines.definitions over gRPC, and the K8sRunLauncher starts every run as a pod of this image.
#
#   docker build -t registry.example.com/hoop-sessions:<tag> .
#
# Dependencies come from uv.lock only (`uv sync --frozen --no-dev`): the image runs the versions
# the tests ran. HOOP_DATA_DIR is not set here: in a cluster it is an object-store URL (s3://...)
# given by the deployment (see deploy/README.md), because a pod's disk does not outlive the pod.

ARG PYTHON_VERSION=3.12
# The uv of the Makefile.
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/hoop/.venv
WORKDIR /src
# The dependencies first, in a layer of their own that only a change of uv.lock rebuilds.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project
COPY README.md ./
COPY src ./src
COPY pipelines ./pipelines
COPY sql ./sql
# The project as a wheel (not a link to /src, which the final image does not have).
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable
# A run pod loads the Dagster instance the Helm chart writes (dagster.yaml): its run launcher is
# dagster-k8s' and its storage dagster-postgres'. They are not in uv.lock (the project runs
# without them), so they are installed here at the release paired with the locked dagster
# (dagster 1.13.N pairs with 0.29.N), with every locked version held as a constraint: a
# mismatch fails the build instead of moving dagster.
ARG DAGSTER_LIBRARIES_VERSION=0.29.27
RUN --mount=type=cache,target=/root/.cache/uv \
    uv export --frozen --no-dev --no-hashes --no-emit-project -o /tmp/locked.txt \
    && uv pip install --python /opt/hoop/.venv/bin/python --constraint /tmp/locked.txt \
        "dagster-k8s==${DAGSTER_LIBRARIES_VERSION}" \
        "dagster-postgres==${DAGSTER_LIBRARIES_VERSION}"

FROM python:${PYTHON_VERSION}-slim-bookworm
# A user without a login or a home of its own files: the code location reads its code, writes
# only its working directory (HOOP_WORK_DIR, or the mounted volume) and talks to the store.
RUN groupadd --system --gid 10001 hoop \
    && useradd --system --uid 10001 --gid hoop --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin hoop \
    && mkdir -p /var/lib/hoop-sessions \
    && chown hoop:hoop /var/lib/hoop-sessions \
    && chmod 0700 /var/lib/hoop-sessions
COPY --from=build /opt/hoop/.venv /opt/hoop/.venv
COPY workspace.yaml /opt/hoop/workspace.yaml
ENV PATH=/opt/hoop/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /var/lib/hoop-sessions
USER 10001:10001
EXPOSE 4000
# The Helm chart replaces this command with its own `dagster api grpc -h 0.0.0.0 -p <port> <args>`
# (deploy/kubernetes/values.yaml gives the args); this one serves the same code location with
# `docker run`. `dagster api grpc` and `dagster code-server start` load a module, not a
# workspace file (workspace.yaml is for `dagster dev` and the webserver).
CMD ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", "4000", "-m", "pipelines.definitions"]
