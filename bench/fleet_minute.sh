#!/usr/bin/env bash
# The fleet for one minute (issue 13): a brain on Postgres, one real worker per engine (Celery,
# RQ, Dramatiq, Huey, arq, taskiq) with the agent, a per-2-second cron, a 3 s interval, a
# one-shot and a solar schedule for each, created through the `z4j` CLI. Prints every fire as it
# lands, then per engine: fires, how many ran exactly once / twice / never in their engine
# (counted by the workers themselves in Redis, by job id), and from each slot to the agent's
# `enqueued` answer and to the task's success, p50 and max. Figures are printed, never asserted;
# the load average at the end says how busy the machine was. Extra arguments go to scripts/fleet:
#   bench/fleet_minute.sh --json fleet-minute.json     # also write the figures as JSON
#   bench/fleet_minute.sh --sqlite                     # the brain on SQLite instead
set -euo pipefail
cd "$(dirname "$0")/.."
exec ./scripts/fleet --duration 60 --plain "$@"
