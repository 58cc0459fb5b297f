# flowledger: one image for the API, every worker and the one-shot migration.
#   docker build -t flowledger .
#   docker run --rm -e DATABASE_URL=postgresql://... flowledger serve
# The command is a `flowledger` subcommand: serve | worker <kind> | migrate upgrade | projections ...

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/flowledger
WORKDIR /src
COPY pyproject.toml README.md ./
COPY flowledger ./flowledger
RUN /opt/flowledger/bin/pip install .

FROM python:3.11-slim
RUN groupadd --system --gid 10001 flowledger \
    && useradd --system --uid 10001 --gid flowledger --home-dir /app --shell /usr/sbin/nologin flowledger
COPY --from=build /opt/flowledger /opt/flowledger
WORKDIR /app
# Alembic's scripts are not part of the Python package: the image carries them.
COPY alembic.ini ./alembic.ini
COPY migrations ./migrations
ENV PATH=/opt/flowledger/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLOWLEDGER_MIGRATIONS_DIR=/app/migrations \
    FLOWLEDGER_HOST=0.0.0.0 \
    FLOWLEDGER_PORT=8000 \
    FLOWLEDGER_LOG_FORMAT=json
USER flowledger:flowledger
EXPOSE 8000 9100
ENTRYPOINT ["flowledger"]
CMD ["serve"]
