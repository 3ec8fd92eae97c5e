#!/usr/bin/env bash
# The poller at scale: BENCH_SHOPS shops (default 10000), each polled every
# BENCH_INTERVAL_S seconds (default 60), by one and then by two `promsync poll` processes,
# against the Prom simulator (one token per shop, no orders: each sweep is one empty
# page, as it is for most shops most of the time) and PostgreSQL + RabbitMQ on this
# machine. Prints one row per poller count and writes deploy/bench/POLLERS.md.
#
#   deploy/bench/pollers.sh
#
# For each poller count P in BENCH_POLLERS (default "1 2"), on a fresh database:
#   1. examples/manyshops connects the shops, their first sweeps spread over one interval;
#   2. P pollers start; after BENCH_WARMUP_S (default interval + 10 s) every shop has been
#      swept once and the simulator's counters are reset;
#   3. for BENCH_MEASURE_S (default two intervals) the simulator sees every sweep (an
#      `orders/list` call without `last_id`) of every shop, the gap between each shop's
#      consecutive sweeps (a sweep late by d shows as a gap of interval + d) and any call
#      that arrived while another with the same token was being answered (a shop swept
#      twice at once); PostgreSQL counts the transactions (every poller statement is one)
#      and /proc the pollers' CPU time.
# A sweep is late when its gap exceeds the interval by more than one poll tick
# (PROMSYNC_POLL_TICK_MS, 1 s by default: an idle poller looks for due shops once a tick).
#
# Environment (all optional):
#   BENCH_SHOPS=10000 BENCH_INTERVAL_S=60 BENCH_POLLERS="1 2" BENCH_WARMUP_S BENCH_MEASURE_S
#   BENCH_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/%2f
#   BENCH_PG_URL_BASE=postgres://postgres@127.0.0.1:5432
#   BENCH_SKIP_BUILD=1 (use the binaries already in target/release)
#   BENCH_RESULTS=<path> (default deploy/bench/POLLERS.md; "-" writes none)
#   PROMSYNC_POLL_* settings reach every poller (e.g. PROMSYNC_POLL_CONCURRENCY).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO="$(pwd)"
export PATH="$PATH:/usr/sbin:/sbin"

SHOPS="${BENCH_SHOPS:-10000}"
INTERVAL_S="${BENCH_INTERVAL_S:-60}"
POLLERS_LIST="${BENCH_POLLERS:-1 2}"
WARMUP_S="${BENCH_WARMUP_S:-$((INTERVAL_S + 10))}"
MEASURE_S="${BENCH_MEASURE_S:-$((INTERVAL_S * 2))}"
BROKER_URL="${BENCH_BROKER_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
PG_URL_BASE="${BENCH_PG_URL_BASE:-postgres://postgres@127.0.0.1:5432}"
RESULTS="${BENCH_RESULTS:-$REPO/deploy/bench/POLLERS.md}"
TICK_S=$(awk -v ms="${PROMSYNC_POLL_TICK_MS:-1000}" 'BEGIN { print ms / 1000 }')
PG_HOST=127.0.0.1
PG_PORT=5432
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
PROMSYNC="$TARGET_DIR/release/promsync"
MANYSHOPS="$TARGET_DIR/release/examples/manyshops"
CLK_TCK="$(getconf CLK_TCK)"

WORK="$(mktemp -d /tmp/promsync-pollbench.XXXXXX)"
PIDS=()
DATABASES=()
ROWS=()

log() { echo "[pollers $(date +%H:%M:%S)] $*"; }
die() {
    echo "pollers.sh: ERROR: $*" >&2
    exit 1
}

for tool in curl jq psql createdb dropdb; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required (apt-get install -y curl jq postgresql-client)"
done

cleanup() {
    local rc=$? pid db
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for db in "${DATABASES[@]}"; do
        dropdb -h "$PG_HOST" -p "$PG_PORT" -U postgres --if-exists --force "$db" >/dev/null 2>&1 || true
    done
    if [ "$rc" -ne 0 ]; then
        echo "pollers.sh: failed (exit $rc); logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Transactions committed in a database so far.
xacts() {
    psql -w -X -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -tAc \
        "select xact_commit + xact_rollback from pg_stat_database where datname = '$1'"
}

# CPU seconds (user + system) the given processes have used so far.
cpu_s() {
    local total=0 pid ticks
    for pid in "$@"; do
        ticks=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + ticks))
    done
    awk -v t="$total" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }'
}

log "services"
deploy/test.sh --services-only >"$WORK/services.log" 2>&1 || {
    cat "$WORK/services.log" >&2
    die "PostgreSQL or RabbitMQ is not available (see above)"
}
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "cargo build --release --bin promsync --example manyshops"
    cargo build --release --bin promsync --example manyshops
fi
for bin in "$PROMSYNC" "$MANYSHOPS"; do
    [ -x "$bin" ] || die "$bin is missing"
done

SIM_PORT="$(free_port)"
SIM_URL="http://127.0.0.1:$SIM_PORT"
RUST_LOG=warn "$PROMSYNC" simulate-prom --listen "127.0.0.1:$SIM_PORT" --orders 0 \
    >"$WORK/simulator.log" 2>&1 &
SIM_PID=$!
PIDS+=("$SIM_PID")
for ((i = 0; i < 100; i++)); do
    curl -fsS -o /dev/null "$SIM_URL/_sim/stats" 2>/dev/null && break
    sleep 0.1
done
curl -fsS -o /dev/null "$SIM_URL/_sim/stats" || die "the simulator did not start (see $WORK/simulator.log)"
log "Prom simulator: $SIM_URL"

for pollers in $POLLERS_LIST; do
    DB="promsync_pollbench_${pollers}_$$"
    createdb -h "$PG_HOST" -p "$PG_PORT" -U postgres "$DB"
    DATABASES+=("$DB")
    export PROMSYNC_DATABASE_URL="$PG_URL_BASE/$DB"
    export PROMSYNC_BROKER_URL="$BROKER_URL"
    export PROMSYNC_BROKER_NAMESPACE="pollbench_${pollers}_$$"
    export PROMSYNC_PROM_ALLOWED_ORIGINS="$SIM_URL"
    export RUST_LOG="${BENCH_RUST_LOG:-warn}"
    "$PROMSYNC" migrate >"$WORK/$pollers-migrate.log" 2>&1 || die "promsync migrate failed (see $WORK)"
    log "$pollers poller(s): connecting $SHOPS shops"
    "$MANYSHOPS" --prom-url "$SIM_URL" --shops "$SHOPS" --interval-s "$INTERVAL_S" \
        >"$WORK/$pollers-manyshops.log" 2>&1 || die "manyshops failed (see $WORK/$pollers-manyshops.log)"
    POLL_PIDS=()
    for ((p = 1; p <= pollers; p++)); do
        "$PROMSYNC" poll >"$WORK/$pollers-poll-$p.log" 2>&1 &
        POLL_PIDS+=("$!")
        PIDS+=("$!")
    done
    log "$pollers poller(s): warming up ${WARMUP_S}s"
    sleep "$WARMUP_S"
    curl -fsS -X DELETE -o /dev/null "$SIM_URL/_sim/calls"
    x0=$(xacts "$DB")
    c0=$(cpu_s "${POLL_PIDS[@]}")
    log "$pollers poller(s): measuring ${MEASURE_S}s"
    sleep "$MEASURE_S"
    x1=$(xacts "$DB")
    c1=$(cpu_s "${POLL_PIDS[@]}")
    late_after=$(awk -v i="$INTERVAL_S" -v t="$TICK_S" 'BEGIN { print i + t }')
    curl -fsS "$SIM_URL/_sim/stats?late_after_s=$late_after" >"$WORK/$pollers-stats.json"
    for pid in "${POLL_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || die "a poller died during the run (see $WORK)"
        kill -TERM "$pid"
    done
    for pid in "${POLL_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    dropdb -h "$PG_HOST" -p "$PG_PORT" -U postgres --if-exists --force "$DB" >/dev/null 2>&1 || true

    row=$(jq -r --argjson measure "$MEASURE_S" --argjson interval "$INTERVAL_S" \
        --argjson shops "$SHOPS" --argjson pollers "$pollers" \
        --argjson xacts "$((x1 - x0))" --argjson cpu "$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" '
        .shops as $s | ($s.sweeps | if . == 0 then 1 else . end) as $n |
        [ $pollers, $shops,
          ($shops / $interval * 100 | round / 100),
          ($s.sweeps / $measure * 100 | round / 100),
          $s.shops,
          $s.late_sweeps,
          (($s.sweep_gaps_s.p99 // $interval) - $interval | . * 100 | round / 100),
          (($s.sweep_gaps_s.max // $interval) - $interval | . * 100 | round / 100),
          ($s.calls / $n * 100 | round / 100),
          ($xacts / $n * 100 | round / 100),
          ($cpu * 1000 / $n * 1000 | round / 1000),
          $s.overlapping_calls ] | map(tostring) | join(" | ")' "$WORK/$pollers-stats.json")
    ROWS+=("| $row |")
    log "$pollers poller(s): $row"
done

HEADER="| pollers | shops | sweeps/s needed | sweeps/s | shops swept | sweeps late by more than a tick | p99 gap over the interval (s) | max gap over the interval (s) | Prom calls/sweep | DB statements/sweep | poller CPU ms/sweep | shops swept twice at once |"
RULE="|---|---|---|---|---|---|---|---|---|---|---|---|"
echo
echo "$HEADER"
echo "$RULE"
printf '%s\n' "${ROWS[@]}"

if [ "$RESULTS" != "-" ]; then
    {
        echo "# Poller benchmark"
        echo
        echo "\`deploy/bench/pollers.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores, PostgreSQL and RabbitMQ on"
        echo "the same machine: $SHOPS shops every ${INTERVAL_S} s, measured for ${MEASURE_S} s after a"
        echo "${WARMUP_S} s warm-up; poll concurrency ${PROMSYNC_POLL_CONCURRENCY:-default}, tick ${TICK_S} s."
        echo "A sweep is late when the gap since the shop's previous sweep exceeds the interval"
        echo "by more than one tick (an idle poller looks for due shops once a tick); the gap over"
        echo "the interval is how late a sweep came, at the 99th percentile and at most."
        echo
        echo "$HEADER"
        echo "$RULE"
        printf '%s\n' "${ROWS[@]}"
    } >"$RESULTS"
    log "wrote $RESULTS"
fi
