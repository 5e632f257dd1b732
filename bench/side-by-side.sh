#!/usr/bin/env bash
# Issue 6's side-by-side: for each of the four target workloads, etcd 3.4 (the shared anchor
# script, which waits for a quiet machine) then Synod, alternating, ROUNDS times. Prints one line
# per run; docs/BENCHMARKS.md takes the medians. Run from the repository root after
# `swift build -c release`. Environment: BIN (default .build/release), ANCHORS (default
# ../shared/anchors), ROUNDS (3), DURATION (8 s per run).
set -u
BIN=${BIN:-.build/release}
ANCHORS=${ANCHORS:-../shared/anchors}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
[ -x "$BIN/synod-bench" ] || { echo "no $BIN/synod-bench: swift build -c release first"; exit 1; }
[ -x "$ANCHORS/etcd-bench.sh" ] || { echo "no $ANCHORS/etcd-bench.sh"; exit 1; }
for r in $(seq 1 "$ROUNDS"); do
  for w in "put 100" "put 1000" "range 100" "put 1"; do
    set -- $w; kind=$1; c=$2
    e=$(MEMBERS=3 CLIENTS=$c WORKLOADS=$kind RUNS=1 DURATION=$DURATION "$ANCHORS/etcd-bench.sh" 2>/dev/null | grep -m1 ops_per_s)
    echo "round $r load $(cut -d' ' -f1 /proc/loadavg) $e"
    sw=put; [ "$kind" = range ] && sw=get
    conns=(); [ "$c" = 1000 ] && conns=(--conns 100)
    l=$(cut -d' ' -f1 /proc/loadavg)
    s=$(timeout 120 "$BIN/synod-bench" --nodes 3 --workload $sw --clients "$c" "${conns[@]}" --duration "$DURATION" -w json 2>/dev/null | tail -1)
    echo "round $r load $l synod $sw clients=$c $s"
  done
done
