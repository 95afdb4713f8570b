# syntax=docker/dockerfile:1
#
# PC-builder app image: Flask under uWSGI (uwsgi protocol on :3031, no HTTP).
# NGINX (separate container) is the only HTTP entry point.
#
# Stage 1 builds wheels (uWSGI is a C extension and needs a compiler);
# stage 2 installs those wheels into a compiler-free runtime image.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

############################
# build: compile wheels
############################
FROM ${PYTHON_IMAGE} AS build

# gcc + libc6-dev are only needed to compile uWSGI. Versions are deliberately
# not pinned: Debian security updates replace the exact version in the
# bookworm archive, so a pin would break rebuilds; nothing from this stage
# except the built wheels reaches the runtime image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build
COPY requirements.txt .
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.txt

############################
# runtime: no compilers
############################
FROM ${PYTHON_IMAGE} AS runtime

# Non-root runtime user. Fixed uid/gid so volume ownership is predictable.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin app

COPY requirements.txt /tmp/requirements.txt
# Install only the wheels built above (no index access, no compiler needed).
# The wheels are bind-mounted from the build stage so they never become a
# layer of this image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels \
        -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Log and data directories exist in the image and belong to `app`, so that
# named volumes mounted here are initialised with that ownership on first use.
RUN mkdir -p /var/log/stack/uwsgi /var/log/stack/app /var/lib/pcbuilder \
    && chown -R app:app /var/log/stack /var/lib/pcbuilder

COPY --chown=root:root service/ /app/service/
WORKDIR /app/service

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app/service \
    LOG_DIR=/var/log/stack \
    DATA_DIR=/var/lib/pcbuilder \
    UWSGI_SOCKET=0.0.0.0:3031

# Numeric uid:gid of the `app` user created above (resolvable by Kubernetes'
# runAsNonRoot checks and by hosts that don't know the name).
USER 10001:10001

EXPOSE 3031

# docker stop sends SIGTERM: uwsgi.ini maps it to a graceful shutdown that lets
# in-flight requests finish (SIGINT would kill them).
STOPSIGNAL SIGTERM

# The container speaks only the uwsgi protocol: the check is a small Python
# client (pcbuilder.healthcheck) that exits 0 when the app answers readyz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "pcbuilder.healthcheck"]

CMD ["uwsgi", "--ini", "/app/service/uwsgi.ini"]
