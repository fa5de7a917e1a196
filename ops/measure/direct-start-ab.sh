#!/usr/bin/env bash
# Interleaved A/B of direct starts (ops/measure/ab.sh with B = --no-direct-start: A has direct starts on).
#
#   ops/measure/direct-start-ab.sh [ROUNDS] [bench options…]   e.g. ops/measure/direct-start-ab.sh 5 --concurrency 400 --ingesters 2
set -euo pipefail
rounds=3
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then rounds=$1; shift; fi
exec "$(dirname "$0")/ab.sh" "$rounds" --no-direct-start "$@"
