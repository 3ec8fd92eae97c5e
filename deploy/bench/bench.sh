#!/usr/bin/env bash
# Ingress, publish, import, database and end-to-end benchmark against PostgreSQL +
# RabbitMQ on this machine. Prints a table and writes deploy/bench/RESULTS.md.
#
#   deploy/bench/bench.sh        (deploy/bench.sh is the same)
#
# For each importer count K in BENCH_IMPORTERS (default "1 2 4"), on a fresh database and
# a fresh broker namespace, each measurement right after its reference so ratios hold on a
# shared machine:
#   1. ingress: promsync serve; loadgen sends BENCH_N signed webhooks (concurrency
#      BENCH_CONCURRENCY) while no importer runs, so the import queue fills up;
#   2. raw: examples/rawpublish publishes BENCH_N messages of the same average size with
#      the same concurrency into a fresh namespace of the same topology (quorum queue +
#      stream, confirms, mandatory, persistent): ingress/raw is printed, with the CPU
#      each process spent per message in both phases (loadgen, serve, RabbitMQ, rawpublish);
#   3. drain: K `promsync import` processes; orders/s = processed events / time until the
#      last new inbound_events row;
#   4. sql: pgbench runs deploy/bench/import.pgbench (the rows one import writes, one
#      commit per order) with K clients for BENCH_SQL_S seconds: import/sql is printed.
# Then, once, end to end (BENCH_E2E_IMPORTERS importers, default 2, plus serve, publish and
# poll): loadgen sends at a fixed rate of 50% of the capacity measured above (the smaller
# of ingress req/s and import orders/s with that many importers) for BENCH_E2E_S seconds;
# latency = inbound_events.processed_at - received_at, overall and by second since the first
# request. Peak RSS (VmHWM) of every role. Load starts once serve's /readyz answers 200
# and every importer consumes, as on a deployment that is up.
#
# Environment (all optional):
#   BENCH_N=20000 BENCH_CONCURRENCY=64 BENCH_ORDERS=<BENCH_N> BENCH_IMPORTERS="1 2 4"
#   BENCH_IMPORT_CONCURRENCY=<import_concurrency setting> BENCH_SQL_S=10
#   BENCH_E2E_IMPORTERS=2 BENCH_E2E_S=20 BENCH_DRAIN_TIMEOUT_S=300 BENCH_STALL_S=60
#   BENCH_E2E_RATE=<req/s> (a fixed end-to-end rate instead of 50% of the capacity;
#     with BENCH_IMPORTERS="" no capacity is measured, only the end-to-end run)
#   BENCH_E2E_WARMUP=<requests> (sent at a tenth of the rate and applied before the
#     measured load, by the same processes: connections used, products in the books)
#   BENCH_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/%2f
#   BENCH_PG_URL_BASE=postgres://postgres@127.0.0.1:5432
#   BENCH_PROM_URL=<a local stub answering 404 to every product lookup; allowed as a Prom
#     origin through PROMSYNC_PROM_ALLOWED_ORIGINS>
#   BENCH_SKIP_BUILD=1 (use the binaries already in target/release)
#   BENCH_RESULTS=<path> (default deploy/bench/RESULTS.md; "-" writes none)
#   BENCH_NOTE="..." (a line about the machine's other load, copied into RESULTS.md)
#   BENCH_PROFILE_DIR=<dir> (perf profiles of every ingress and drain phase, see prof_start)
#   PROMSYNC_* settings (e.g. PROMSYNC_IMPORT_BATCH_SIZE) reach every promsync process.
#
# Every loop is bounded in time; processes, databases and queues made here are removed
# on exit. All traffic stays on 127.0.0.1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO="$(pwd)"
BENCH_DIR="$REPO/deploy/bench"
export PATH="$PATH:/usr/sbin:/sbin"

N="${BENCH_N:-20000}"
CONCURRENCY="${BENCH_CONCURRENCY:-64}"
ORDERS="${BENCH_ORDERS:-$N}"
IMPORTERS_LIST="${BENCH_IMPORTERS-1 2 4}"
IMPORT_CONCURRENCY="${BENCH_IMPORT_CONCURRENCY:-}"
SQL_S="${BENCH_SQL_S:-10}"
E2E_IMPORTERS="${BENCH_E2E_IMPORTERS:-2}"
E2E_S="${BENCH_E2E_S:-20}"
RESULTS="${BENCH_RESULTS:-$BENCH_DIR/RESULTS.md}"
DRAIN_TIMEOUT_S="${BENCH_DRAIN_TIMEOUT_S:-300}"
STALL_S="${BENCH_STALL_S:-60}"
BROKER_URL="${BENCH_BROKER_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
PG_URL_BASE="${BENCH_PG_URL_BASE:-postgres://postgres@127.0.0.1:5432}"
PG_HOST=127.0.0.1
PG_PORT=5432
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
PROMSYNC="$TARGET_DIR/release/promsync"
LOADGEN="$TARGET_DIR/release/examples/loadgen"
RAWPUBLISH="$TARGET_DIR/release/examples/rawpublish"

WORK="$(mktemp -d /tmp/promsync-bench.XXXXXX)"
PIDS=()       # every background process started here
DATABASES=()  # every database created here
NAMESPACES=() # every broker namespace used here
SUMMARY=()    # one line per round

log() { echo "[bench $(date +%H:%M:%S)] $*"; }
die() {
    echo "bench.sh: ERROR: $*" >&2
    exit 1
}

for tool in curl jq psql createdb dropdb pgbench; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required (apt-get install -y curl jq postgresql-client)"
done

stop_pid() {
    # stop_pid PID [GRACE_S]: SIGTERM, wait up to GRACE_S (default 15), then SIGKILL.
    local pid="$1" grace="${2:-15}" i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not stop in ${grace}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

delete_namespace_queues() {
    local ns="$1" q
    command -v rabbitmqctl >/dev/null 2>&1 || return 0
    # One call for the whole namespace: one `delete_queue` per queue took a second or more
    # each, and runs were seen to leave some of their queues behind.
    if timeout 60 rabbitmqctl eval "[rabbit_amqqueue:delete(Q, false, false, <<\"promsync-bench\">>)
            || Q <- rabbit_amqqueue:list(),
               lists:prefix(\"$ns.\", binary_to_list(element(4, amqqueue:get_name(Q))))], ok." \
            >/dev/null 2>&1; then
        return 0
    fi
    timeout 30 rabbitmqctl list_queues -q --no-table-headers name 2>/dev/null \
        | awk -v p="$ns." 'index($1, p) == 1 { print $1 }' \
        | while read -r q; do
            timeout 30 rabbitmqctl delete_queue -q "$q" >/dev/null 2>&1 || true
        done || true
}

cleanup() {
    local rc=$? pid db ns
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do stop_pid "$pid" 5; done
    for db in "${DATABASES[@]}"; do
        dropdb -h "$PG_HOST" -p "$PG_PORT" -U postgres --if-exists --force "$db" >/dev/null 2>&1 \
            || dropdb -h "$PG_HOST" -p "$PG_PORT" -U postgres --if-exists "$db" >/dev/null 2>&1 \
            || echo "bench.sh: could not drop database $db" >&2
    done
    for ns in "${NAMESPACES[@]}"; do delete_namespace_queues "$ns"; done
    if [ "$rc" -ne 0 ]; then
        echo "bench.sh: failed (exit $rc); logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

vm_hwm_kib() {
    # Peak resident set size of a live process, in KiB ("?" if it is gone).
    awk '/^VmHWM:/ { print $2; found = 1 } END { if (!found) print "?" }' \
        "/proc/$1/status" 2>/dev/null || echo "?"
}

mib() {
    case "$1" in
        '?' | '') echo "?" ;;
        *) awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }' ;;
    esac
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null \
        && return 0
    local p
    for ((p = 18080 + RANDOM % 2000; p < 30000; p++)); do
        if ! timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$p" 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "no free TCP port found"
}

# Last line of a command's stdout that is a JSON object (logs may precede it).
json_line() {
    grep -E '^\s*\{' "$1" | tail -n 1
}

tail_log() {
    echo "---- last lines of $1 ----" >&2
    tail -n 40 "$1" >&2 || true
}

# ---------------------------------------------------------------------------------------
log "services"
deploy/test.sh --services-only >"$WORK/services.log" 2>&1 || {
    cat "$WORK/services.log" >&2
    die "PostgreSQL or RabbitMQ is not available (see above)"
}

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "cargo build --release --bin promsync --example loadgen --example rawpublish"
    cargo build --release --bin promsync --example loadgen --example rawpublish
fi
for bin in "$PROMSYNC" "$LOADGEN" "$RAWPUBLISH"; do
    [ -x "$bin" ] || die "$bin is missing"
done

# A stand-in for the Prom API: every product lookup answers 404 (Prom no longer has it),
# so importers create products from the order lines without waiting on the network.
PROM_URL="${BENCH_PROM_URL:-}"
if [ -z "$PROM_URL" ]; then
    if command -v python3 >/dev/null 2>&1; then
        PROM_PORT="$(free_port)"
        python3 - "$PROM_PORT" >"$WORK/prom-stub.log" 2>&1 <<'PY' &
import sys
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

class Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self):
        n = int(self.headers.get("content-length") or 0)
        if n:
            self.rfile.read(n)
        body = b'{"error": "not found"}'
        self.send_response(404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Stub).serve_forever()
PY
        PIDS+=("$!")
        PROM_URL="http://127.0.0.1:$PROM_PORT"
        for ((i = 0; i < 50; i++)); do
            curl -s -o /dev/null "$PROM_URL/" && break
            sleep 0.1
        done
    else
        PROM_URL="http://127.0.0.1:9"
    fi
fi
log "Prom API stand-in: $PROM_URL"

psql_db() {
    PGCONNECT_TIMEOUT=5 psql -w -X -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d "$1" -tAc "$2"
}

# setup TAG: a fresh database and namespace with an account and a shop. Sets DB, NS,
# DB_URL, LISTEN, ACCOUNT_ID, SHOP_ID, SECRET and exports the PROMSYNC_* of this setup.
setup() {
    local tag="$1"
    DB="promsync_bench_${tag}"
    NS="bench_${tag}"
    DB_URL="$PG_URL_BASE/$DB"
    LISTEN="127.0.0.1:$(free_port)"
    createdb -h "$PG_HOST" -p "$PG_PORT" -U postgres "$DB"
    DATABASES+=("$DB")
    NAMESPACES+=("$NS")

    export PROMSYNC_DATABASE_URL="$DB_URL"
    export PROMSYNC_BROKER_URL="$BROKER_URL"
    export PROMSYNC_BROKER_NAMESPACE="$NS"
    export PROMSYNC_LISTEN="$LISTEN"
    # The bench floods one shop on purpose: no per-shop webhook limit.
    export PROMSYNC_WEBHOOK_RATE_PER_SHOP_PER_S=0
    # The Prom stand-in is local: the per-token throttle that protects the real Prom
    # would only make the cold start (every importer fetching the 3 new products) slow.
    export PROMSYNC_PROM_RATE_PER_S="${PROMSYNC_PROM_RATE_PER_S:-1000}"
    # The stand-in is plain http on loopback: allowed explicitly, as a deployment lists
    # its simulator (otherwise `shop create` refuses it and every fetch is refused).
    export PROMSYNC_PROM_ALLOWED_ORIGINS="$PROM_URL"
    export RUST_LOG="${BENCH_RUST_LOG:-warn}"

    "$PROMSYNC" migrate >"$WORK/$tag-migrate.log" 2>&1 || {
        tail_log "$WORK/$tag-migrate.log"
        die "promsync migrate failed"
    }
    "$PROMSYNC" account create --name Bench >"$WORK/$tag-account.json" 2>"$WORK/$tag-account.err" || {
        tail_log "$WORK/$tag-account.err"
        die "promsync account create failed"
    }
    ACCOUNT_ID="$(json_line "$WORK/$tag-account.json" | jq -r '.account_id')"
    if [ -z "$ACCOUNT_ID" ] || [ "$ACCOUNT_ID" = null ]; then die "account create printed no account_id"; fi
    "$PROMSYNC" shop create --account "$ACCOUNT_ID" --name Bench --prom-url "$PROM_URL" \
        --prom-token x >"$WORK/$tag-shop.json" 2>"$WORK/$tag-shop.err" || {
        tail_log "$WORK/$tag-shop.err"
        die "promsync shop create failed"
    }
    SHOP_ID="$(json_line "$WORK/$tag-shop.json" | jq -r '.shop_id')"
    SECRET="$(json_line "$WORK/$tag-shop.json" | jq -r '.webhook_secret')"
    if [ -z "$SHOP_ID" ] || [ "$SHOP_ID" = null ]; then die "shop create printed no shop_id"; fi
    if [ -z "$SECRET" ] || [ "$SECRET" = null ]; then die "shop create printed no webhook_secret"; fi
}

# teardown: drop this setup's database and queues now (the trap is the safety net).
teardown() {
    dropdb -h "$PG_HOST" -p "$PG_PORT" -U postgres --if-exists --force "$DB" >/dev/null 2>&1 || true
    delete_namespace_queues "$NS"
}

# start_role TAG ROLE [ARGS...]: a promsync process in the background; sets ROLE_PID.
start_role() {
    local tag="$1" role="$2"
    shift 2
    "$PROMSYNC" "$role" "$@" >"$WORK/$tag-$role-$RANDOM.log" 2>&1 &
    ROLE_PID=$!
    PIDS+=("$ROLE_PID")
}

# start_serve TAG: promsync serve, and no traffic until /readyz answers 200 (database
# connections and the broker's publishing link open), as a load balancer would wait.
start_serve() {
    local tag="$1"
    start_role "$tag" serve
    SERVE_PID=$ROLE_PID
    local deadline=$((SECONDS + 60))
    until curl -fsS -o /dev/null "http://$LISTEN/readyz" 2>/dev/null; do
        kill -0 "$SERVE_PID" 2>/dev/null || die "promsync serve exited before /readyz answered 200 (logs in $WORK)"
        [ "$SECONDS" -lt "$deadline" ] || die "promsync serve: /readyz did not answer 200 within 60s"
        sleep 0.2
    done
}

# wait_consumers QUEUE N: until RabbitMQ shows N consumers on QUEUE (the importers
# subscribed), bounded to 60 s: load starts on roles that are up, as in a running
# deployment, not on processes still connecting.
wait_consumers() {
    local queue="$1" want="$2" have deadline=$((SECONDS + 60))
    while :; do
        have="$( (timeout 30 rabbitmqctl list_queues -q name consumers 2>/dev/null || true) |
            awk -v q="$queue" '$1 == q { print $2 }')"
        [ "${have:-0}" -ge "$want" ] && return 0
        [ "$SECONDS" -lt "$deadline" ] || die "$queue: ${have:-0} of $want consumers after 60s"
        sleep 0.5
    done
}

import_args() {
    if [ -n "$IMPORT_CONCURRENCY" ]; then echo "--concurrency $IMPORT_CONCURRENCY"; fi
}

events() {
    psql_db "$DB" "select count(*) from inbound_events" 2>/dev/null
}

# wait_events EXPECTED: until inbound_events holds EXPECTED rows, bounded by the drain
# timeout and by BENCH_STALL_S without progress. Sets LAST_COUNT, T_LAST, VERDICT.
wait_events() {
    local expected="$1" count now
    LAST_COUNT="$(events || echo 0)"
    T_LAST="$(date +%s.%N)"
    VERDICT="drained"
    local stall_deadline=$((SECONDS + STALL_S)) drain_deadline=$((SECONDS + DRAIN_TIMEOUT_S))
    while [ "$LAST_COUNT" -lt "$expected" ]; do
        # Each look is a new PostgreSQL backend: looking often would cost the database
        # measurable CPU. The drain's end comes from the rows themselves (drain_end).
        sleep 0.5
        count="$(events || echo "$LAST_COUNT")"
        now="$(date +%s.%N)"
        if [ "$count" -gt "$LAST_COUNT" ]; then
            LAST_COUNT="$count"
            T_LAST="$now"
            stall_deadline=$((SECONDS + STALL_S))
        fi
        if [ "$SECONDS" -ge "$drain_deadline" ]; then
            VERDICT="timeout(${DRAIN_TIMEOUT_S}s)"
            return
        fi
        if [ "$SECONDS" -ge "$stall_deadline" ]; then
            VERDICT="stalled(${STALL_S}s)"
            return
        fi
    done
}

# drain_end: when the last inbound_events row was applied (epoch seconds), or T_LAST.
drain_end() {
    psql_db "$DB" "select extract(epoch from max(processed_at)) from inbound_events" 2>/dev/null || echo "$T_LAST"
}

# sql_baseline CLIENTS: pgbench with the import's rows, in the current database; prints tps.
sql_baseline() {
    local clients="$1" product
    product="$(psql_db "$DB" "insert into products (account_id, name, sku, prom_id, unit, created_at)
        select $ACCOUNT_ID, 'Bench ' || g, 'BENCH-' || g, 0, 'pcs', now() from generate_series(1, 3) g
        returning id" | head -n 1)"
    psql_db "$DB" "update products set prom_id = id where prom_id = 0" >/dev/null
    local status
    status="$(psql_db "$DB" "select id from order_statuses where account_id = $ACCOUNT_ID order by id limit 1")"
    PGCONNECT_TIMEOUT=5 pgbench -h "$PG_HOST" -p "$PG_PORT" -U postgres -n -M prepared \
        -c "$clients" -j "$clients" -T "$SQL_S" -f "$BENCH_DIR/import.pgbench" \
        -D account="$ACCOUNT_ID" -D shop="$SHOP_ID" -D status="$status" -D product="$product" \
        "$DB" >"$WORK/pgbench-$clients.out" 2>&1 || {
        tail_log "$WORK/pgbench-$clients.out"
        die "pgbench failed"
    }
    sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/pgbench-$clients.out" | head -n 1
}

# prof_start NAME / prof_stop: with BENCH_PROFILE_DIR set, a system-wide perf profile
# (cpu-clock, every process: promsync, PostgreSQL, RabbitMQ, the load generators) of one
# phase, written to BENCH_PROFILE_DIR/NAME.data (`perf report -i … --sort comm,dso,sym`).
PERF_PID=""
prof_start() {
    [ -n "${BENCH_PROFILE_DIR:-}" ] || return 0
    mkdir -p "$BENCH_PROFILE_DIR"
    perf record -q -a -g -e cpu-clock -F 499 -o "$BENCH_PROFILE_DIR/$1.data" >/dev/null 2>&1 &
    PERF_PID=$!
    PIDS+=("$PERF_PID")
}
prof_stop() {
    [ -n "$PERF_PID" ] || return 0
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=""
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "?" }'
}

# proc_cpu PID: CPU seconds (user + system, every thread) the process has used so far.
CLK_TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"
proc_cpu() {
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || { echo "?"; return; }
    # Fields after the ")" that ends the command name: utime is the 12th, stime the 13th.
    sed 's/^.*) //' "/proc/$1/stat" | awk -v hz="$CLK_TCK" '{ printf "%.3f", ($12 + $13) / hz }'
}

# per_msg_us BEFORE AFTER COUNT: CPU microseconds per message between two proc_cpu readings.
per_msg_us() {
    awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (a == "?" || b == "?" || n + 0 <= 0) print "?"; else printf "%.0f", (b - a) * 1e6 / n }'
}

# sum_us A B ...: the sum, or "?" when any is unknown.
sum_us() {
    local total=0 x
    for x in "$@"; do
        [ "$x" != "?" ] || { echo "?"; return; }
        total=$((total + x))
    done
    echo "$total"
}

# RabbitMQ's Erlang VM, whose CPU the ingress and raw phases both pay (empty if not local).
rabbit_pid() {
    pgrep -o -f 'beam.smp.*rabbit' 2>/dev/null || true
}

round1() {
    awk -v x="$1" 'BEGIN { if (x == "?" || x == "") print "?"; else printf "%.1f", x }'
}

# run_round K: ingress, raw publish, drain with K importers, SQL baseline with K clients.
run_round() {
    local k="$1"
    local tag="r${k}_$$"
    echo
    log "===== round: $k importer(s) ====="
    setup "$tag"

    # --- ingress ------------------------------------------------------------------------
    start_serve "$tag"
    log "serve is up on $LISTEN; loadgen: $N requests, concurrency $CONCURRENCY, $ORDERS orders"
    prof_start "ingress-$k"
    local beam serve_cpu0 beam_cpu0
    beam="$(rabbit_pid)"
    serve_cpu0="$(proc_cpu "$SERVE_PID")"
    beam_cpu0="$(proc_cpu "$beam")"
    timeout $((DRAIN_TIMEOUT_S + 60)) "$LOADGEN" --url "http://$LISTEN" --shop-id "$SHOP_ID" \
        --secret "$SECRET" --count "$N" --concurrency "$CONCURRENCY" --orders "$ORDERS" \
        >"$WORK/$tag-loadgen.out"
    local serve_cpu1 beam_cpu1
    serve_cpu1="$(proc_cpu "$SERVE_PID")"
    beam_cpu1="$(proc_cpu "$beam")"
    prof_stop
    local lg
    lg="$(sed -n 's/^loadgen-json: //p' "$WORK/$tag-loadgen.out" | tail -n 1)"
    [ -n "$lg" ] || die "loadgen printed no summary"
    local accepted ingress_rps p50 p99
    accepted="$(jq -r '.accepted' <<<"$lg")"
    ingress_rps="$(jq -r '.rps | . * 10 | round / 10' <<<"$lg")"
    p50="$(jq -r '.p50_ms | . * 100 | round / 100' <<<"$lg")"
    p99="$(jq -r '.p99_ms | . * 100 | round / 100' <<<"$lg")"
    SERVE_RSS="$(vm_hwm_kib "$SERVE_PID")"
    stop_pid "$SERVE_PID" 15
    log "ingress: accepted $accepted/$N at $ingress_rps req/s (p50 $p50 ms, p99 $p99 ms)"

    # --- raw publish, same size and concurrency -------------------------------------------
    # The broker message is the webhook's order inside the envelope (event id, shop,
    # source, received_at, order id): about 140 bytes more than the webhook body.
    local size beam_cpu2 beam_cpu3
    size=$(($(jq -r '.body_bytes' <<<"$lg") + 140))
    beam_cpu2="$(proc_cpu "$beam")"
    timeout 300 "$RAWPUBLISH" --url "$BROKER_URL" --namespace "raw_$tag" --count "$N" \
        --concurrency "$CONCURRENCY" --size "$size" >"$WORK/$tag-raw.out" 2>&1 || {
        tail_log "$WORK/$tag-raw.out"
        die "rawpublish failed"
    }
    beam_cpu3="$(proc_cpu "$beam")"
    local raw raw_rate
    raw="$(sed -n 's/^rawpublish-json: //p' "$WORK/$tag-raw.out" | tail -n 1)"
    raw_rate="$(jq -r '.rate | . * 10 | round / 10' <<<"$raw")"
    # Where each message's CPU went, in µs: what bounds ingress/raw on a machine whose
    # cores are shared by the load generator, promsync and RabbitMQ.
    local lg_us serve_us beam_in_us raw_us beam_raw_us published
    published="$(jq -r '.published' <<<"$raw")"
    lg_us="$(per_msg_us 0 "$(jq -r '.cpu_s // "?"' <<<"$lg")" "$N")"
    serve_us="$(per_msg_us "$serve_cpu0" "$serve_cpu1" "$accepted")"
    beam_in_us="$(per_msg_us "$beam_cpu0" "$beam_cpu1" "$accepted")"
    raw_us="$(per_msg_us 0 "$(jq -r '.cpu_s // "?"' <<<"$raw")" "$published")"
    beam_raw_us="$(per_msg_us "$beam_cpu2" "$beam_cpu3" "$published")"
    log "CPU µs/message: ingress = loadgen $lg_us + serve $serve_us + RabbitMQ $beam_in_us; raw = rawpublish $raw_us + RabbitMQ $beam_raw_us"
    CPU_ROWS+=("| $k | $lg_us | $serve_us | $beam_in_us | $(sum_us "$lg_us" "$serve_us" "$beam_in_us") | $raw_us | $beam_raw_us | $(sum_us "$raw_us" "$beam_raw_us") |")
    log "raw publish ($size B): $raw_rate/s; ingress/raw $(ratio "$ingress_rps" "$raw_rate")"

    # --- drain --------------------------------------------------------------------------
    local before
    before="$(events)" || die "cannot query inbound_events in $DB"
    local ipids=() i t0
    prof_start "import-$k"
    t0="$(date +%s.%N)"
    for ((i = 1; i <= k; i++)); do
        # shellcheck disable=SC2046
        start_role "$tag" import $(import_args)
        ipids+=("$ROLE_PID")
    done
    wait_events $((before + accepted))
    prof_stop
    local rss_max=0 r p
    for p in "${ipids[@]}"; do
        r="$(vm_hwm_kib "$p")"
        if [ "$r" != "?" ] && [ "$r" -gt "$rss_max" ]; then rss_max="$r"; fi
    done
    for p in "${ipids[@]}"; do stop_pid "$p" 15; done
    local processed=$((LAST_COUNT - before)) drain_s rate
    drain_s="$(awk -v a="$t0" -v b="$(drain_end)" 'BEGIN { printf "%.2f", b - a }')"
    rate="$(awk -v n="$processed" -v s="$drain_s" 'BEGIN { if (s > 0) printf "%.1f", n / s; else print "?" }')"
    local outcomes
    outcomes="$(psql_db "$DB" "select string_agg(outcome || '=' || n, ',' order by outcome) from (select outcome, count(*) n from inbound_events group by outcome) t" || echo "?")"
    log "drain: $VERDICT; $processed event(s) in ${drain_s}s = $rate orders/s; outcomes ${outcomes:--}"
    [ "$VERDICT" = drained ] || NOT_DRAINED+=("$k")

    # --- the database's limit for the same rows -------------------------------------------
    local tps
    tps="$(sql_baseline "$k")"
    log "plain SQL (pgbench, $k client(s)): $(round1 "$tps") orders/s; import/sql $(ratio "$rate" "$tps")"

    INGRESS_RPS[$k]="$ingress_rps"
    IMPORT_RATE[$k]="$rate"
    ROWS+=("| $k | $ingress_rps | $p50 | $p99 | $raw_rate | $(ratio "$ingress_rps" "$raw_rate") | $rate | $(round1 "$tps") | $(ratio "$rate" "$tps") | $VERDICT | $(mib "$SERVE_RSS") | $(mib "$rss_max") |")
    teardown
}

# run_e2e K: serve + K importers + publish + poll; loadgen at a fixed rate.
run_e2e() {
    local k="$1"
    local tag="e2e_$$"
    local ing="${INGRESS_RPS[$k]:-${INGRESS_RPS[1]:-}}" imp="${IMPORT_RATE[$k]:-${IMPORT_RATE[1]:-}}"
    local capacity target count
    capacity="$(awk -v a="$ing" -v b="$imp" 'BEGIN { if (b + 0 > 0 && b + 0 < a + 0) print b; else print a }')"
    target="$(awk -v c="$capacity" 'BEGIN { printf "%d", c / 2 }')"
    if [ -n "${BENCH_E2E_RATE:-}" ]; then
        # A fixed rate, to compare builds at the same load (BENCH_IMPORTERS="" skips the
        # rounds that measure the capacity).
        capacity="$((BENCH_E2E_RATE * 2))"
        target="$BENCH_E2E_RATE"
    fi
    [ "${target:-0}" -gt 0 ] || die "no capacity measured for the end-to-end run"
    count=$((target * E2E_S))
    echo
    log "===== end to end: $k importer(s), $target req/s (50% of $capacity) for ${E2E_S}s ====="
    setup "$tag"
    start_serve "$tag"
    local ipids=() i
    for ((i = 1; i <= k; i++)); do
        # shellcheck disable=SC2046
        start_role "$tag" import $(import_args)
        ipids+=("$ROLE_PID")
    done
    start_role "$tag" publish
    local publish_pid=$ROLE_PID
    start_role "$tag" poll
    local poll_pid=$ROLE_PID
    wait_consumers "$NS.inbound.import" "$k"
    # Optionally, traffic before the measured load (BENCH_E2E_WARMUP requests at a tenth of
    # the rate, applied before the load starts): the same processes then meet the load
    # with their connections used and the orders' products in the books, which tells the
    # cost of cold processes apart from that of the first sale of new products.
    local warm="${BENCH_E2E_WARMUP:-0}" since="-infinity"
    if [ "$warm" -gt 0 ]; then
        "$LOADGEN" --url "http://$LISTEN" --shop-id "$SHOP_ID" --secret "$SECRET" --count "$warm" \
            --concurrency "$CONCURRENCY" --orders "$warm" --order-base 600000000 \
            --rate "$(( target / 10 + 1 ))" >"$WORK/$tag-warmup.out"
        wait_events "$warm"
        since="$(psql_db "$DB" "select now()")"
        log "warm-up: $warm requests applied before the measured load"
    fi
    timeout $((E2E_S + DRAIN_TIMEOUT_S)) "$LOADGEN" --url "http://$LISTEN" --shop-id "$SHOP_ID" \
        --secret "$SECRET" --count "$count" --concurrency "$CONCURRENCY" --orders "$count" \
        --order-base 700000000 --rate "$target" >"$WORK/$tag-loadgen.out"
    local lg accepted sent_rps
    lg="$(sed -n 's/^loadgen-json: //p' "$WORK/$tag-loadgen.out" | tail -n 1)"
    accepted="$(jq -r '.accepted' <<<"$lg")"
    sent_rps="$(jq -r '.rps | . * 10 | round / 10' <<<"$lg")"
    wait_events "$((accepted + warm))"
    # Only the measured load's events count (the warm-up's, if any, came before `since`).
    local measured="(select * from inbound_events where received_at >= '$since') e"
    local lat
    lat="$(psql_db "$DB" "select round(percentile_cont(0.5) within group (order by ms)::numeric, 1) || ' ' ||
        round(percentile_cont(0.99) within group (order by ms)::numeric, 1) || ' ' || round(max(ms)::numeric, 1)
        from (select extract(epoch from processed_at - received_at) * 1000 as ms from $measured) t")"
    local e50 e99 emax w99
    read -r e50 e99 emax <<<"$lat"
    # The same without the first 2 seconds, when the importers' caches are cold (shop,
    # products: the first orders look their products up and fetch them from "Prom").
    w99="$(psql_db "$DB" "select round(percentile_cont(0.99) within group (order by ms)::numeric, 1)
        from (select extract(epoch from processed_at - received_at) * 1000 as ms from $measured
              where received_at >= (select min(received_at) + interval '2 seconds' from $measured)) t")"
    # By second since the first request: where in the run the slow ones are (a cold
    # start shows as the first seconds' p99).
    E2E_SECONDS=()
    local row
    while IFS='|' read -r -a row; do
        E2E_SECONDS+=("| ${row[0]} | ${row[1]} | ${row[2]} | ${row[3]} | ${row[4]} |")
    done < <(psql_db "$DB" "select s, count(*), round(percentile_cont(0.5) within group (order by ms)::numeric, 1),
            round(percentile_cont(0.99) within group (order by ms)::numeric, 1), round(max(ms)::numeric, 1)
        from (select floor(extract(epoch from received_at - (select min(received_at) from $measured)))::int as s,
                     extract(epoch from processed_at - received_at) * 1000 as ms from $measured) t
        group by s order by s")
    log "end to end by second since the first request (second | events | p50 | p99 | max ms):"
    printf '  %s\n' "${E2E_SECONDS[@]}"
    local serve_rss import_rss=0 r p publish_rss poll_rss
    serve_rss="$(vm_hwm_kib "$SERVE_PID")"
    for p in "${ipids[@]}"; do
        r="$(vm_hwm_kib "$p")"
        if [ "$r" != "?" ] && [ "$r" -gt "$import_rss" ]; then import_rss="$r"; fi
    done
    publish_rss="$(vm_hwm_kib "$publish_pid")"
    poll_rss="$(vm_hwm_kib "$poll_pid")"
    for p in "$SERVE_PID" "${ipids[@]}" "$publish_pid" "$poll_pid"; do stop_pid "$p" 15; done
    log "end to end: $accepted accepted at $sent_rps req/s; webhook->applied p50 $e50 ms, p99 $e99 ms, max $emax ms ($VERDICT)"
    E2E_ROW="| $k | $target (50% of $capacity) | $sent_rps | $accepted | $e50 | $e99 | $w99 | $emax | $VERDICT |"
    RSS_ROW="| $(mib "$serve_rss") | $(mib "$import_rss") | $(mib "$publish_rss") | $(mib "$poll_rss") |"
    [ "$VERDICT" = drained ] || NOT_DRAINED+=("e2e")
    teardown
}

machine() {
    local cpu ram pg rabbit rev
    cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    ram="$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    pg="$(psql_db postgres "show server_version" 2>/dev/null || echo "?")"
    rabbit="$(timeout 30 rabbitmqctl version 2>/dev/null || echo "?")"
    rev="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "?")"
    if [ -n "$(git -C "$REPO" status --porcelain 2>/dev/null)" ]; then rev="$rev (+ uncommitted changes)"; fi
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); git: $rev"
    echo "- cores: $(nproc) × $cpu; RAM: $ram"
    echo "- PostgreSQL $pg, RabbitMQ $rabbit, all on 127.0.0.1"
    echo "- load average at start: $LOAD_AT_START${BENCH_NOTE:+; $BENCH_NOTE}"
    echo "- settings: BENCH_N=$N, loadgen/rawpublish concurrency $CONCURRENCY, import --concurrency ${IMPORT_CONCURRENCY:-<setting>}; $(env | grep '^PROMSYNC_IMPORT' | sort | tr '\n' ' ')(unset = the defaults in README)"
}

LOAD_AT_START="$(cut -d' ' -f1-3 /proc/loadavg)"
declare -A INGRESS_RPS IMPORT_RATE
ROWS=()
CPU_ROWS=()
NOT_DRAINED=()
E2E_ROW=""
E2E_SECONDS=()
RSS_ROW=""
for k in $IMPORTERS_LIST; do
    run_round "$k"
done
run_e2e "$E2E_IMPORTERS"

report() {
    echo "## Machine"
    echo
    machine
    echo
    echo "## Ingress, publish, import and the database's limit"
    echo
    echo "| importers | ingress req/s | p50 ms | p99 ms | raw publish/s | ingress/raw | import orders/s | plain SQL orders/s | import/sql | drain | serve MiB | importer MiB |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for row in "${ROWS[@]}"; do echo "$row"; done
    echo
    echo "- ingress: loadgen -> serve (verify, parse, publish, broker confirm) -> 202, importers stopped."
    echo "- raw publish: examples/rawpublish, lapin with confirms into the same topology, same size and concurrency, right after."
    echo "- import: drain of the pre-filled queue, first importer start to the last new inbound_events row."
    echo "- plain SQL: pgbench with deploy/bench/import.pgbench (advisory lock, product lookup, order lookup, client, order, 3 items, inbox row; one commit per order; prepared statements), as many clients as importers, right after."
    echo
    echo "## CPU per message, ingress and raw (µs, all on this machine's $(nproc) cores)"
    echo
    echo "| importers | loadgen | serve | RabbitMQ (ingress) | ingress total | rawpublish | RabbitMQ (raw) | raw total |"
    echo "|---|---|---|---|---|---|---|---|"
    for row in "${CPU_ROWS[@]}"; do echo "$row"; done
    echo
    echo "- CPU time (user + system) each process used during the phase, over the messages sent:"
    echo "  loadgen and rawpublish report their own (getrusage), serve and RabbitMQ's beam.smp are read"
    echo "  from /proc. When the cores are saturated, ingress/raw is close to raw total / ingress total."
    echo
    echo "## End to end (webhook -> applied) at 50% load"
    echo
    echo "| importers | target req/s | sent req/s | accepted | p50 ms | p99 ms | p99 ms after 2 s | max ms | drain |"
    echo "|---|---|---|---|---|---|---|---|---|"
    echo "$E2E_ROW"
    echo
    echo "Latency = inbound_events.processed_at - received_at: from the ingress receiving the webhook"
    echo "to the start of the batch transaction that applies it (its commit follows within that batch's"
    echo "apply time, a few ms). 50% load = half the smaller of ingress req/s and import orders/s."
    echo
    echo "By second since the first request:"
    echo
    echo "| second | events | p50 ms | p99 ms | max ms |"
    echo "|---|---|---|---|---|"
    for row in "${E2E_SECONDS[@]}"; do echo "$row"; done
    echo
    echo "## Peak RSS per role (MiB, during the end-to-end run)"
    echo
    echo "| serve | import | publish | poll |"
    echo "|---|---|---|---|"
    echo "$RSS_ROW"
    if [ -f "$BENCH_DIR/PROFILE.md" ]; then
        echo
        cat "$BENCH_DIR/PROFILE.md"
    fi
}

echo
echo "===== promsync bench ====="
report | tee "$WORK/report.md"
if [ "$RESULTS" != "-" ]; then
    { echo "# promsync benchmark results"; echo; echo "Written by deploy/bench/bench.sh."; echo; cat "$WORK/report.md"; } >"$RESULTS"
    log "wrote $RESULTS"
fi
if [ "${#NOT_DRAINED[@]}" -gt 0 ]; then
    echo "bench.sh: the queue did not drain in: ${NOT_DRAINED[*]}" >&2
    exit 1
fi
