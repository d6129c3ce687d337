#!/usr/bin/env bash
# Start the gateway under gunicorn (gthread workers).
set -euo pipefail
cd "$(dirname "$0")"
exec gunicorn -c gunicorn.conf.py gateway.wsgi:app
