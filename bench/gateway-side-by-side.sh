#!/usr/bin/env bash
# gateway-side-by-side.sh — Synod's JSON gateway against etcd 3.4's (grpc-gateway) on this
# machine: the same HTTP calls (POST /v3/kv/put, POST /v3/kv/range, linearizable) from `wrk`,
# 3 nodes each on 127.0.0.1, fsync on, alternating, RUNS rounds. Prints one line per run and
# stops every process it started, by PID.
#
#   BIN=.build/release bash bench/gateway-side-by-side.sh
#
# Environment: BIN (dir with the release `synod`), CONNS (100), THREADS (2), DURATION (8 s),
# RUNS (3), WORKLOADS ("put range"), BASE (/tmp/gw-bench). Needs etcd-server (Debian) and wrk.
set -u
BIN=${BIN:-.build/release}
CONNS=${CONNS:-100}
THREADS=${THREADS:-2}
DURATION=${DURATION:-8}
RUNS=${RUNS:-3}
WORKLOADS=${WORKLOADS:-"put range"}
BASE=${BASE:-/tmp/gw-bench}
PIDS=()

stop_all() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; PIDS=(); }
trap 'stop_all; rm -rf "$BASE"' EXIT
trap 'exit 130' INT TERM

rm -rf "$BASE"; mkdir -p "$BASE"
# 8-byte key, 256-byte value (base64), as the other benchmarks.
KEY=$(printf 'key00001' | base64 -w0)
VALUE=$(head -c 256 /dev/zero | tr '\0' 'v' | base64 -w0)
cat > "$BASE/put.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"key":"$KEY","value":"$VALUE"}'
wrk.headers["Content-Type"] = "application/json"
LUA
cat > "$BASE/range.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"key":"$KEY"}'
wrk.headers["Content-Type"] = "application/json"
LUA

start_etcd() {
  local ic="m1=http://127.0.0.1:2380,m2=http://127.0.0.1:22380,m3=http://127.0.0.1:32380" i c p
  for i in 1 2 3; do
    case $i in 1) c=2379 p=2380;; 2) c=22379 p=22380;; 3) c=32379 p=32380;; esac
    etcd --name m$i --data-dir "$BASE/etcd$i" --listen-client-urls http://127.0.0.1:$c --advertise-client-urls http://127.0.0.1:$c \
      --listen-peer-urls http://127.0.0.1:$p --initial-advertise-peer-urls http://127.0.0.1:$p \
      --initial-cluster "$ic" --initial-cluster-token gw --initial-cluster-state new --logger zap --log-outputs "$BASE/etcd$i.log" >/dev/null 2>&1 &
    PIDS+=($!); disown $!
  done
  for _ in $(seq 100); do curl -s -X POST http://127.0.0.1:2379/v3/kv/put -d "{\"key\":\"$KEY\",\"value\":\"$VALUE\"}" | grep -q revision && return; sleep 0.2; done
  echo "etcd did not come up" >&2; exit 1
}

start_synod() {
  local peers="1=127.0.0.1:47101,2=127.0.0.1:47102,3=127.0.0.1:47103" i
  for i in 1 2 3; do
    "$BIN/synod" serve --id $i --data "$BASE/synod$i" --peers "$peers" --listen-client 127.0.0.1:4700$i --listen-http 127.0.0.1:4730$i \
      >"$BASE/synod$i.log" 2>&1 &
    PIDS+=($!); disown $!
  done
  for _ in $(seq 100); do curl -s -X POST http://127.0.0.1:47301/v3/kv/put -d "{\"key\":\"$KEY\",\"value\":\"$VALUE\"}" | grep -q revision && return; sleep 0.2; done
  echo "synod did not come up" >&2; exit 1
}

# The leader's gateway for puts (both systems forward a follower's writes internally, but the
# other benchmarks drive the leader too).
etcd_leader_port() {
  local c
  for c in 2379 22379 32379; do
    curl -s -X POST http://127.0.0.1:$c/v3/maintenance/status -d '{}' | python3 -c 'import json,sys; d=json.load(sys.stdin); print("yes" if d["leader"]==d["header"]["member_id"] else "no")' | grep -q yes && { echo $c; return; }
  done
  echo 2379
}
synod_leader_port() {
  local i
  for i in 1 2 3; do
    curl -s -X POST http://127.0.0.1:4730$i/v3/maintenance/status -d '{}' | python3 -c 'import json,sys; d=json.load(sys.stdin); print("yes" if d["leader"]==d["header"]["member_id"] else "no")' | grep -q yes && { echo 4730$i; return; }
  done
  echo 47301
}

run() {  # system workload port
  local out rps p50 p99
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$BASE/$2.lua" "http://127.0.0.1:$3/v3/kv/$2" 2>&1)
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  p50=$(echo "$out" | awk '$1=="50%"{print $2}')
  p99=$(echo "$out" | awk '$1=="99%"{print $2}')
  errors=$(echo "$out" | awk '/Non-2xx/{print $NF}')
  echo "$1 gateway $2 conns=$CONNS ops_per_s=$rps p50=$p50 p99=$p99 non2xx=${errors:-0} load=$(cut -d' ' -f1 /proc/loadavg)"
}

start_etcd
start_synod
EL=$(etcd_leader_port); SL=$(synod_leader_port)
for w in $WORKLOADS; do
  for r in $(seq "$RUNS"); do
    run etcd "$w" "$EL"
    run synod "$w" "$SL"
  done
done
