#!/usr/bin/env bash
# Replay against raw publishing on this machine's RabbitMQ. Each round logs BENCH_N
# notifications into a fresh broker namespace with BENCH_IN_FLIGHT confirmed publishes at
# once (the raw publish rate), then replays the whole log with the same window (the replay
# rate), and prints both with their ratio; see examples/replaybench.rs. Targets: replay
# ≥ 0.5 × raw and ≥ 5,000 events/s. Record the figures in deploy/bench/RESULTS.md.
#
#   deploy/bench/replay.sh
#
# Environment (all optional):
#   BENCH_N=40000 BENCH_IN_FLIGHT=512 BENCH_SIZE=3000 BENCH_ROUNDS=3
#   BENCH_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/%2f
#   BENCH_SKIP_BUILD=1 (use the example already built in target/release)
#
# Every namespace made here is deleted by the example itself; all traffic stays on
# 127.0.0.1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO="$(pwd)"
N="${BENCH_N:-40000}"
IN_FLIGHT="${BENCH_IN_FLIGHT:-512}"
SIZE="${BENCH_SIZE:-3000}"
ROUNDS="${BENCH_ROUNDS:-3}"
BROKER_URL="${BENCH_BROKER_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
REPLAYBENCH="$TARGET_DIR/release/examples/replaybench"

log() { echo "[replay-bench $(date +%H:%M:%S)] $*"; }

if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
    log "building examples/replaybench (release)"
    cargo build --release --example replaybench
fi
[ -x "$REPLAYBENCH" ] || { echo "replay.sh: $REPLAYBENCH missing" >&2; exit 1; }

log "N=$N in_flight=$IN_FLIGHT size=$SIZE rounds=$ROUNDS; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| round | raw publish/s | replay/s | replay/raw |"
echo "|---|---|---|---|"
for ((round = 1; round <= ROUNDS; round++)); do
    ns="replay_bench_$$_$round"
    line="$("$REPLAYBENCH" --url "$BROKER_URL" --namespace "$ns" --count "$N" \
        --in-flight "$IN_FLIGHT" --size "$SIZE" | sed -n 's/^replaybench-json: //p')"
    [ -n "$line" ] || { echo "replay.sh: round $round printed no figures" >&2; exit 1; }
    python3 - "$round" "$line" <<'PY'
import json, sys
r = json.loads(sys.argv[2])
print(f"| {sys.argv[1]} | {r['raw_per_s']:.0f} | {r['replay_per_s']:.0f} | {r['ratio']:.2f} |")
PY
done
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
