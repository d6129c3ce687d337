#!/usr/bin/env bash
# Start one instance of this service (its database is created and migrated at start).
set -euo pipefail
cd "$(dirname "$0")"
exec nameko run --config config.yml "$(basename "$PWD").service"
