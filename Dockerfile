# g4f-telegram-bot: build a virtualenv in one stage, ship only that virtualenv in the next.
#   docker build -t g4f-telegram-bot:local .
#   docker run --rm --stop-timeout 30 --env-file .env -e DATA_DIR=/data -v bot-data:/data \
#     g4f-telegram-bot:local

FROM python:3.12-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# A virtualenv without pip: the base image's pip installs into it, so pip is not shipped.
RUN python -m venv --without-pip /opt/venv

WORKDIR /src

# Dependencies first, in their own layer: with no package directories yet, this installs only
# what pyproject.toml pins, so editing the sources does not reinstall g4f and aiogram.
COPY pyproject.toml README.md LICENSE ./
RUN pip --python /opt/venv/bin/python install --no-cache-dir .

# Then the bot itself (g4f plain, as pinned: no extras, so no curl_cffi).
COPY bot ./bot
COPY config ./config
RUN pip --python /opt/venv/bin/python install --no-cache-dir --no-deps --force-reinstall . \
 && /opt/venv/bin/python -I -c "import bot.__main__, config" \
 && ! /opt/venv/bin/python -I -c "import curl_cffi" 2>/dev/null


FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    DATA_DIR=/data \
    HOME=/data

# A fixed numeric user and group, so volume ownership is predictable on any host.
RUN groupadd --gid 10001 bot \
 && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home --home-dir /data \
        --shell /usr/sbin/nologin bot \
 && install -d -o 10001 -g 10001 -m 0750 /data

COPY --from=builder /opt/venv /opt/venv

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]

# The bot runs as PID 1 and handles SIGTERM and SIGINT from its first instant (also while it is
# importing, or waiting for Telegram at start-up): either stops it cleanly.
STOPSIGNAL SIGINT

# /healthz, /metrics and, with BOT_MODE=webhook, the webhook (WEB_PORT).
EXPOSE 8080

# Healthy when /healthz says Telegram and the storage answer; `docker inspect` shows its answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "bot.healthcheck"]

ENTRYPOINT ["python", "-m", "bot"]
