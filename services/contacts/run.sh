#!/usr/bin/env bash
# Start one instance of this service (its database is created and migrated at start).
set -euo pipefail
cd "$(dirname "$0")"
# crm_common.serve: nameko run with a bounded graceful stop on SIGTERM (CRM_SHUTDOWN_TIMEOUT)
exec python -m crm_common.serve --config config.yml "$(basename "$PWD").service"
