# One image for every CRM process; docker-compose.yml picks the service per
# container (working_dir + command: ["./run.sh"]).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Dependencies first, so code changes do not reinstall them (layer cache).
# Every pinned package ships a manylinux wheel: no compiler needed.
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/venv \
 && pip install -r /tmp/requirements.lock \
 && rm /tmp/requirements.lock

WORKDIR /app
COPY libs/ /app/libs/
COPY services/ /app/services/
COPY bin/ /app/bin/

ENV PYTHONPATH=/app/libs:/app/services/leads:/app/services/contacts:/app/services/tasks:/app/services/campaigns:/app/services/analytics:/app/services/gateway

# Code stays root-owned (read-only to the app); the exec bit may be lost by
# some checkouts (e.g. Windows), so set it here.
RUN chmod 0755 /app/services/*/run.sh /app/bin/*.py \
 && groupadd --system --gid 10001 crm \
 && useradd --system --uid 10001 --gid crm --no-create-home --home-dir /app --shell /usr/sbin/nologin crm

USER crm:crm

# The gateway's port; a nameko service listens only for Prometheus
# (CRM_METRICS_PORT, 9100 in docker-compose.yml); RPC and events go over AMQP.
EXPOSE 8000 9100

# Default: the gateway. Compose overrides working_dir per service.
WORKDIR /app/services/gateway
CMD ["./run.sh"]
