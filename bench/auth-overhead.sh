#!/usr/bin/env bash
# auth-overhead.sh — what auth costs: one 3-node cluster (`synod dev`, fsync on, 127.0.0.1),
# put and linearizable get with 100 clients from synod-bench, alternating between auth off
# (anonymous clients) and auth on (a non-root user whose role holds 11 permissions, one of
# them readwrite on every key), RUNS rounds. Prints one line per run and stops the cluster by PID.
#
#   BIN=.build/release bash bench/auth-overhead.sh
#
# Environment: BIN (dir with the release `synod` and `synod-bench`), CLIENTS (100), DURATION
# (8 s), WARMUP (1 s; every connection connects and authenticates — a PBKDF2 check each, one at a time
# per node, ~7 s for 100 connections to the leader — before the measured window starts),
# RUNS (3), WORKLOADS ("put get"), BASE (/tmp/auth-bench), PORT (9401: client ports
# PORT..PORT+2, peers PORT+100..).
set -u
BIN=${BIN:-.build/release}
CLIENTS=${CLIENTS:-100}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-1}
RUNS=${RUNS:-3}
WORKLOADS=${WORKLOADS:-"put get"}
BASE=${BASE:-/tmp/auth-bench}
PORT=${PORT:-9401}
EP="127.0.0.1:$PORT,127.0.0.1:$((PORT + 1)),127.0.0.1:$((PORT + 2))"
DEV=""

stop_all() { [ -n "$DEV" ] && kill -INT "$DEV" 2>/dev/null && wait "$DEV" 2>/dev/null; DEV=""; }
trap 'stop_all; rm -rf "$BASE"' EXIT
trap 'exit 130' INT TERM

rm -rf "$BASE"; mkdir -p "$BASE"
"$BIN/synod" dev --data "$BASE/data" --client-port "$PORT" --peer-port $((PORT + 100)) --metrics-port 0 --http-port 0 > "$BASE/dev.log" 2>&1 &
DEV=$!
S() { "$BIN/synod" --endpoints "$EP" "$@" > /dev/null; }
for _ in $(seq 1 100); do S put ready 1 2>/dev/null && break; sleep 0.2; done
# Auth needs cluster version 2, which a new cluster reaches within a second of its election.
for _ in $(seq 1 50); do S user add root:rootpw 2>/dev/null && break; sleep 0.2; done
S user add bench:benchpw
S role add bench
for p in a b c d e f g h i j; do S role grant-permission bench read "$p/" --prefix; done
S role grant-permission bench readwrite "" --from-key
S user grant-role bench bench

run() { # $1 workload, $2 auth label, rest: extra synod-bench flags
  local w=$1 label=$2; shift 2
  local out
  out=$("$BIN/synod-bench" --endpoints "$EP" --workload "$w" --clients "$CLIENTS" --duration "$DURATION" --warmup "$WARMUP" -w json "$@" 2>/dev/null)
  echo "$w auth=$label load=$(cut -d' ' -f1 /proc/loadavg) $out"
}
for r in $(seq 1 "$RUNS"); do
  for w in $WORKLOADS; do
    S --user root:rootpw auth disable 2>/dev/null || true
    run "$w" off
    S auth enable
    run "$w" on --user bench:benchpw
  done
done
