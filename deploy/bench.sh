#!/usr/bin/env bash
# Ingress and import benchmark against PostgreSQL + RabbitMQ on this machine.
#
#   deploy/bench.sh
#
# For each importer count in BENCH_IMPORTERS (default "1 2 4"), on a fresh database and a
# fresh broker namespace:
#   1. promsync migrate, account create, shop create; promsync serve in the background;
#   2. ingress: loadgen sends BENCH_N signed webhooks (concurrency BENCH_CONCURRENCY) while
#      no importer runs, so the import queue fills up; serve is then stopped;
#   3. drain: K `promsync import --concurrency BENCH_IMPORT_CONCURRENCY` processes start and
#      the time until every accepted event has a row in inbound_events is measured.
# Peak RSS (VmHWM) of serve and of each importer is read before they are stopped.
#
# Environment (all optional):
#   BENCH_N=20000 BENCH_CONCURRENCY=64 BENCH_ORDERS=<BENCH_N> BENCH_IMPORTERS="1 2 4"
#   BENCH_IMPORT_CONCURRENCY=8 BENCH_DRAIN_TIMEOUT_S=300 BENCH_STALL_S=60
#   BENCH_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/%2f
#   BENCH_PG_URL_BASE=postgres://postgres@127.0.0.1:5432
#   BENCH_PROM_URL=<a local stub answering 404 to every product lookup>
#   BENCH_SKIP_BUILD=1 (use the binaries already in target/release)
#
# Every loop is bounded in time; processes, databases and queues made here are removed
# on exit. All traffic stays on 127.0.0.1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$(pwd)"
export PATH="$PATH:/usr/sbin:/sbin"

N="${BENCH_N:-20000}"
CONCURRENCY="${BENCH_CONCURRENCY:-64}"
ORDERS="${BENCH_ORDERS:-$N}"
IMPORTERS_LIST="${BENCH_IMPORTERS:-1 2 4}"
IMPORT_CONCURRENCY="${BENCH_IMPORT_CONCURRENCY:-8}"
DRAIN_TIMEOUT_S="${BENCH_DRAIN_TIMEOUT_S:-300}"
STALL_S="${BENCH_STALL_S:-60}"
BROKER_URL="${BENCH_BROKER_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
PG_URL_BASE="${BENCH_PG_URL_BASE:-postgres://postgres@127.0.0.1:5432}"
PG_HOST=127.0.0.1
PG_PORT=5432
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
PROMSYNC="$TARGET_DIR/release/promsync"
LOADGEN="$TARGET_DIR/release/examples/loadgen"

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

for tool in curl jq psql createdb dropdb; do
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
    log "cargo build --release --bin promsync --example loadgen"
    cargo build --release --bin promsync --example loadgen
fi
[ -x "$PROMSYNC" ] || die "$PROMSYNC is missing"
[ -x "$LOADGEN" ] || die "$LOADGEN is missing"

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

# run_round K: one full round (fresh db + namespace, ingress, drain with K importers).
run_round() {
    local k="$1"
    local tag="r${k}_$$"
    local db="promsync_bench_${tag}"
    local ns="bench_${tag}"
    local db_url="$PG_URL_BASE/$db"
    local port
    port="$(free_port)"
    local listen="127.0.0.1:$port"

    echo
    log "===== round: $k importer(s), database $db, namespace $ns ====="
    createdb -h "$PG_HOST" -p "$PG_PORT" -U postgres "$db"
    DATABASES+=("$db")
    NAMESPACES+=("$ns")

    export PROMSYNC_DATABASE_URL="$db_url"
    export PROMSYNC_BROKER_URL="$BROKER_URL"
    export PROMSYNC_BROKER_NAMESPACE="$ns"
    export PROMSYNC_LISTEN="$listen"
    # The bench floods one shop on purpose: no per-shop webhook limit.
    export PROMSYNC_WEBHOOK_RATE_PER_SHOP_PER_S=0
    export RUST_LOG="${BENCH_RUST_LOG:-warn}"

    "$PROMSYNC" migrate >"$WORK/$tag-migrate.log" 2>&1 || {
        tail_log "$WORK/$tag-migrate.log"
        die "promsync migrate failed"
    }
    "$PROMSYNC" account create --name Bench >"$WORK/$tag-account.json" 2>"$WORK/$tag-account.err" || {
        tail_log "$WORK/$tag-account.err"
        die "promsync account create failed"
    }
    local account_id
    account_id="$(json_line "$WORK/$tag-account.json" | jq -r '.account_id')"
    if [ -z "$account_id" ] || [ "$account_id" = null ]; then die "account create printed no account_id"; fi
    "$PROMSYNC" shop create --account "$account_id" --name Bench --prom-url "$PROM_URL" \
        --prom-token x >"$WORK/$tag-shop.json" 2>"$WORK/$tag-shop.err" || {
        tail_log "$WORK/$tag-shop.err"
        die "promsync shop create failed"
    }
    local shop_id secret
    shop_id="$(json_line "$WORK/$tag-shop.json" | jq -r '.shop_id')"
    secret="$(json_line "$WORK/$tag-shop.json" | jq -r '.webhook_secret')"
    if [ -z "$shop_id" ] || [ "$shop_id" = null ]; then die "shop create printed no shop_id"; fi
    if [ -z "$secret" ] || [ "$secret" = null ]; then die "shop create printed no webhook_secret"; fi

    # --- ingress ------------------------------------------------------------------------
    "$PROMSYNC" serve >"$WORK/$tag-serve.log" 2>&1 &
    local serve_pid=$!
    PIDS+=("$serve_pid")
    local deadline=$((SECONDS + 60))
    until curl -fsS -o /dev/null "http://$listen/healthz" 2>/dev/null; do
        if ! kill -0 "$serve_pid" 2>/dev/null; then
            tail_log "$WORK/$tag-serve.log"
            die "promsync serve exited before /healthz answered"
        fi
        [ "$SECONDS" -lt "$deadline" ] || {
            tail_log "$WORK/$tag-serve.log"
            die "promsync serve: /healthz did not answer within 60s"
        }
        sleep 0.2
    done
    log "serve is up on $listen (pid $serve_pid); loadgen: $N requests, concurrency $CONCURRENCY, $ORDERS orders"

    timeout $((DRAIN_TIMEOUT_S + 60)) "$LOADGEN" --url "http://$listen" --shop-id "$shop_id" \
        --secret "$secret" --count "$N" --concurrency "$CONCURRENCY" --orders "$ORDERS" \
        | tee "$WORK/$tag-loadgen.out"
    local lg
    lg="$(sed -n 's/^loadgen-json: //p' "$WORK/$tag-loadgen.out" | tail -n 1)"
    [ -n "$lg" ] || die "loadgen printed no summary"
    local accepted ingress_rps p50 p99 other
    accepted="$(jq -r '.accepted' <<<"$lg")"
    ingress_rps="$(jq -r '.rps | . * 10 | round / 10' <<<"$lg")"
    p50="$(jq -r '.p50_ms | . * 100 | round / 100' <<<"$lg")"
    p99="$(jq -r '.p99_ms | . * 100 | round / 100' <<<"$lg")"
    other="$(jq -r '.other | to_entries | map("\(.key)=\(.value)") | join(",") | if . == "" then "-" else . end' <<<"$lg")"

    local serve_rss
    serve_rss="$(vm_hwm_kib "$serve_pid")"
    stop_pid "$serve_pid" 15
    log "ingress: accepted $accepted/$N at $ingress_rps req/s (p50 $p50 ms, p99 $p99 ms); serve peak RSS $(mib "$serve_rss") MiB"

    local queued="?"
    if command -v rabbitmqctl >/dev/null 2>&1; then
        queued="$(timeout 30 rabbitmqctl list_queues -q --no-table-headers name messages 2>/dev/null \
            | awk -v q="$ns.inbound.import" '$1 == q { print $2 }')"
        queued="${queued:-?}"
        log "queue $ns.inbound.import holds $queued message(s) before the importers start"
    fi

    # --- drain --------------------------------------------------------------------------
    local before
    before="$(psql_db "$db" "select count(*) from inbound_events")" \
        || die "cannot query inbound_events in $db"
    local expected=$((before + accepted))
    local ipids=() i
    local t0
    t0="$(date +%s.%N)"
    for ((i = 1; i <= k; i++)); do
        "$PROMSYNC" import --concurrency "$IMPORT_CONCURRENCY" >"$WORK/$tag-import-$i.log" 2>&1 &
        ipids+=("$!")
        PIDS+=("$!")
    done
    log "started $k importer(s) (pids ${ipids[*]}), waiting for $expected processed event(s)"

    local count="$before" last_count="$before" t_last="$t0" now
    local stall_deadline=$((SECONDS + STALL_S)) drain_deadline=$((SECONDS + DRAIN_TIMEOUT_S))
    local verdict="drained"
    while :; do
        count="$(psql_db "$db" "select count(*) from inbound_events" 2>/dev/null || echo "$last_count")"
        now="$(date +%s.%N)"
        if [ "$count" -gt "$last_count" ]; then
            last_count="$count"
            t_last="$now"
            stall_deadline=$((SECONDS + STALL_S))
        fi
        if [ "$count" -ge "$expected" ]; then
            break
        fi
        if [ "$SECONDS" -ge "$drain_deadline" ]; then
            verdict="timeout(${DRAIN_TIMEOUT_S}s)"
            break
        fi
        if [ "$SECONDS" -ge "$stall_deadline" ]; then
            verdict="stalled(${STALL_S}s)"
            break
        fi
        local alive=0 p
        for p in "${ipids[@]}"; do
            if kill -0 "$p" 2>/dev/null; then alive=$((alive + 1)); fi
        done
        if [ "$alive" -eq 0 ]; then
            verdict="importers-exited"
            break
        fi
        sleep 0.5
    done

    local rss_list=() rss_max=0 r
    for p in "${ipids[@]}"; do
        r="$(vm_hwm_kib "$p")"
        rss_list+=("$(mib "$r")")
        if [ "$r" != "?" ] && [ "$r" -gt "$rss_max" ]; then
            rss_max="$r"
        fi
    done
    for p in "${ipids[@]}"; do stop_pid "$p" 15; done

    local processed=$((last_count - before))
    local drain_s rate
    drain_s="$(awk -v a="$t0" -v b="$t_last" 'BEGIN { printf "%.2f", b - a }')"
    rate="$(awk -v n="$processed" -v s="$drain_s" 'BEGIN { if (s > 0) printf "%.1f", n / s; else print "?" }')"
    local applied outcomes
    applied="$(psql_db "$db" "select count(*) from inbound_events where outcome in ('applied')" || echo "?")"
    outcomes="$(psql_db "$db" "select string_agg(outcome || '=' || n, ',' order by outcome) from (select outcome, count(*) n from inbound_events group by outcome) t" || echo "?")"
    log "drain: $verdict; $processed event(s) in ${drain_s}s = $rate events/s; applied $applied; outcomes ${outcomes:--}"
    log "importer peak RSS (MiB): ${rss_list[*]}"
    if [ "$verdict" != drained ]; then
        for ((i = 1; i <= k; i++)); do tail_log "$WORK/$tag-import-$i.log"; done
    fi

    SUMMARY+=("$(printf '%-9s %8s %9s %8s %8s %8s %-12s %8s %9s %8s %8s %9s %-18s %s' \
        "$k" "$N" "$accepted" "$ingress_rps" "$p50" "$p99" "$other" "$(mib "$serve_rss")" \
        "$processed" "$applied" "$drain_s" "$rate" "$verdict" \
        "$(mib "$rss_max") [${rss_list[*]}]")")
    if [ "$verdict" != drained ]; then
        NOT_DRAINED+=("$k")
    fi

    # This round's database and queues are no longer needed: free them now.
    dropdb -h "$PG_HOST" -p "$PG_PORT" -U postgres --if-exists --force "$db" >/dev/null 2>&1 || true
    delete_namespace_queues "$ns"
}

NOT_DRAINED=()
for k in $IMPORTERS_LIST; do
    run_round "$k"
done

echo
echo "===== promsync bench summary ($(nproc) cores; N=$N, concurrency $CONCURRENCY, orders $ORDERS, import --concurrency $IMPORT_CONCURRENCY) ====="
printf '%-9s %8s %9s %8s %8s %8s %-12s %8s %9s %8s %8s %9s %-18s %s\n' \
    importers sent accepted "req/s" "p50ms" "p99ms" other "serveMiB" processed applied "drain_s" "events/s" verdict "importer peak MiB: max [each]"
for line in "${SUMMARY[@]}"; do echo "$line"; done
echo
echo "req/s, p50/p99: webhook ingress (loadgen -> serve -> broker confirm -> 202), importers stopped."
echo "events/s: drain of the pre-filled import queue, from importer start to the last new inbound_events row."
if [ "${#NOT_DRAINED[@]}" -gt 0 ]; then
    echo "bench.sh: the queue did not drain in the round(s) with ${NOT_DRAINED[*]} importer(s)" >&2
    exit 1
fi
