#!/usr/bin/env bash
# The single test command for promsync.
#
#   deploy/test.sh                  services + alert rules + fmt + clippy + module cycles
#                                   + OpenAPI check + tests + chaos
#   deploy/test.sh --quick          services + alert rules + OpenAPI check + tests (skips fmt
#                                   and clippy)
#   deploy/test.sh --services-only  only make sure PostgreSQL and RabbitMQ are up
#
# On a fresh Debian 12 machine it installs PostgreSQL and RabbitMQ from Debian's packages,
# starts them if they are not answering, and makes local TCP connections as user postgres
# use trust auth. Integration tests read:
#   PROMSYNC_TEST_DATABASE_URL  (default postgres://postgres@127.0.0.1:5432/postgres)
#   PROMSYNC_TEST_BROKER_URL    (default amqp://guest:guest@127.0.0.1:5672/%2f)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

QUICK=0
SERVICES_ONLY=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        --services-only) SERVICES_ONLY=1 ;;
        -h | --help)
            sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "test.sh: unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

# Debian puts the server tools in /usr/sbin and the PostgreSQL binaries out of PATH.
export PATH="$PATH:/usr/sbin:/sbin"
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"

PG_HOST=127.0.0.1
PG_PORT=5432
AMQP_PORT=5672
SERVICE_TIMEOUT_S="${PROMSYNC_SERVICE_TIMEOUT_S:-60}"

export PROMSYNC_TEST_DATABASE_URL="${PROMSYNC_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export PROMSYNC_TEST_BROKER_URL="${PROMSYNC_TEST_BROKER_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"

header() {
    echo
    echo "==> $*"
}

die() {
    echo "test.sh: ERROR: $*" >&2
    exit 1
}

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and sudo is missing: cannot install or start services"
    SUDO=(sudo -n)
fi

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* by hand"
    if [ "$APT_UPDATED" -eq 0 ]; then
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q || true
        APT_UPDATED=1
    fi
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# port_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# shellcheck disable=SC2012 # version directory names are plain numbers
pg_cluster_version() {
    ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1
}

pg_select1() {
    PGCONNECT_TIMEOUT=3 psql -w -X -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres \
        -tAc 'select 1' >/dev/null 2>&1
}

# wait_for NAME SECONDS CHECK...: polls CHECK until it succeeds or the deadline passes.
wait_for() {
    local name="$1" secs="$2"
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            die "$name is not answering after ${secs}s"
        fi
        sleep 1
    done
}

ensure_postgres() {
    header "PostgreSQL"
    if ! command -v psql >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null 2>&1 \
        || [ -z "$(pg_cluster_version)" ]; then
        echo "PostgreSQL is not installed: installing postgresql"
        apt_install postgresql
    fi
    local ver
    ver="$(pg_cluster_version)"
    [ -n "$ver" ] || die "PostgreSQL: no cluster under /etc/postgresql after install"

    if ! port_open "$PG_PORT"; then
        echo "PostgreSQL $ver is not answering on $PG_HOST:$PG_PORT: starting cluster $ver/main"
        "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$ver" main start \
            || echo "pg_ctlcluster start failed (it may already be starting)" >&2
    fi
    wait_for "PostgreSQL on $PG_HOST:$PG_PORT" "$SERVICE_TIMEOUT_S" port_open "$PG_PORT"

    if ! pg_select1; then
        # A fresh install only allows peer/scram auth: trust local TCP for user postgres.
        local hba="/etc/postgresql/$ver/main/pg_hba.conf"
        [ -f "$hba" ] || die "PostgreSQL: cannot log in as postgres and $hba is missing"
        echo "PostgreSQL: enabling trust auth for postgres on 127.0.0.1 and ::1 in $hba"
        local tmp
        tmp="$(mktemp)"
        {
            echo "# added by promsync deploy/test.sh: local TCP test access"
            echo "host    all    postgres    127.0.0.1/32    trust"
            echo "host    all    postgres    ::1/128         trust"
            "${SUDO[@]}" cat "$hba"
        } >"$tmp"
        "${SUDO[@]}" cp "$tmp" "$hba"
        rm -f "$tmp"
        "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
        wait_for "PostgreSQL login as postgres on $PG_HOST:$PG_PORT" 15 pg_select1
    fi
    echo "PostgreSQL $ver is up on $PG_HOST:$PG_PORT"
}

ensure_rabbitmq() {
    header "RabbitMQ"
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        echo "RabbitMQ is not installed: installing rabbitmq-server"
        apt_install rabbitmq-server
        # Debian's package may start it through the init system; give it a moment.
        sleep 2
    fi
    if ! port_open "$AMQP_PORT"; then
        echo "RabbitMQ is not answering on 127.0.0.1:$AMQP_PORT: starting rabbitmq-server -detached"
        "${SUDO[@]}" rabbitmq-server -detached \
            || echo "rabbitmq-server -detached failed (it may already be starting)" >&2
    fi
    wait_for "RabbitMQ (AMQP) on 127.0.0.1:$AMQP_PORT" "$SERVICE_TIMEOUT_S" port_open "$AMQP_PORT"
    # The AMQP listener opens late in boot; confirm the node itself, bounded and best-effort
    # (the CLI needs the Erlang cookie, which a non-root user may not be able to read).
    if ! timeout 20 "${SUDO[@]}" rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
        echo "note: rabbitmq-diagnostics ping did not answer; the AMQP port is open, going on" >&2
    fi
    echo "RabbitMQ is up on 127.0.0.1:$AMQP_PORT"
}

ensure_rust() {
    header "Rust toolchain"
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup) first"
    local want=()
    cargo fmt --version >/dev/null 2>&1 || want+=(rustfmt)
    cargo clippy --version >/dev/null 2>&1 || want+=(clippy)
    if [ "${#want[@]}" -gt 0 ]; then
        if command -v rustup >/dev/null 2>&1; then
            rustup component add "${want[@]}" || echo "warning: rustup component add ${want[*]} failed" >&2
        else
            echo "warning: ${want[*]} missing and rustup not found" >&2
        fi
    fi
    cargo --version
}

# The operator UI's browser tests (tests/it/ui_browser.rs) drive Debian's headless Chromium
# through chromedriver; without them those tests fail and say so.
ensure_chromium() {
    header "Chromium (browser tests)"
    if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
        echo "Chromium or chromedriver is missing: installing chromium chromium-driver"
        apt_install chromium chromium-driver
    fi
    /usr/bin/chromium --version 2>/dev/null || true
}

# The alert rules (deploy/prometheus/) are checked and unit-tested with promtool, which
# comes with Debian's prometheus package. Only the tool is wanted: the server the package
# may start is stopped and disabled again.
ensure_promtool() {
    header "promtool (alert rules)"
    if ! command -v promtool >/dev/null 2>&1; then
        echo "promtool is missing: installing prometheus"
        apt_install prometheus
        if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
            "${SUDO[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
        else
            "${SUDO[@]}" service prometheus stop >/dev/null 2>&1 || true
        fi
    fi
    promtool --version 2>&1 | head -n 1
}

ensure_postgres
ensure_rabbitmq
echo
echo "PROMSYNC_TEST_DATABASE_URL=$PROMSYNC_TEST_DATABASE_URL"
echo "PROMSYNC_TEST_BROKER_URL=$PROMSYNC_TEST_BROKER_URL"

if [ "$SERVICES_ONLY" -eq 1 ]; then
    exit 0
fi

ensure_rust
ensure_chromium
ensure_promtool

# The rules must load, and each alert must fire (and stay quiet) as its unit tests say.
# That every metric they and the dashboard name is exported is an integration test
# (tests/it/observe.rs).
header "promtool check rules / test rules   (deploy/prometheus)"
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts.test.yml

if [ "$QUICK" -eq 0 ]; then
    header "cargo fmt --all -- --check"
    cargo fmt --all -- --check

    header "cargo clippy --all-targets -- -D warnings"
    cargo clippy --all-targets -- -D warnings
    # The chaos suite is not among --all-targets (Cargo.toml: test = false).
    cargo clippy --test chaos -- -D warnings
    # The simulator, the entities and the migrations are workspace crates of their own,
    # outside the root package's targets.
    cargo clippy -p promsync-simulator -p entity -p migration --all-targets -- -D warnings

    # The crate's top-level modules form layers; an import cycle between them fails here.
    header "deploy/check-module-cycles.py"
    python3 deploy/check-module-cycles.py
fi

# The OpenAPI document, as `GET /api/openapi.json` answers it, must be valid OpenAPI
# (client generators reject duplicate operation ids and dangling references).
header "openapi-spec-validator   (the OpenAPI document)"
if ! python3 -c 'import openapi_spec_validator' >/dev/null 2>&1; then
    python3 -m pip install --quiet openapi-spec-validator
fi
OPENAPI_JSON="$(mktemp --suffix .json)"
trap 'rm -f "$OPENAPI_JSON"' EXIT
cargo run --quiet --example openapi >"$OPENAPI_JSON"
python3 -m openapi_spec_validator "$OPENAPI_JSON"

# Unit tests and the integration binary (tests/it), whose modules are the suites.
header "cargo test --all-targets -- --test-threads 4   (PostgreSQL + RabbitMQ)"
PROMSYNC_TEST_BACKEND=rabbitmq cargo test --all-targets -- --test-threads 4
cargo test -p promsync-simulator -p entity -p migration -- --test-threads 4

# One suite, two backends: the inbound pipeline, recovery and API suites again on SQLite
# and the embedded broker. (The outbound suite drives several relays and publishers at
# one database, which the embedded setup does not promise; it runs on PostgreSQL above.)
header "cargo test (inbound, poller, recovery, API, UI, hostile-input suites)   (SQLite + embedded broker)"
# Each filter is a module of the integration binary (`ui::` does not match `ui_browser::`).
PROMSYNC_TEST_BACKEND=embedded cargo test --test it -- \
    import:: ingress:: recovery:: shutdown:: api:: poll:: hostile:: ui:: \
    --test-threads 4

# Last, alone: the fault-injection suite starts its own PostgreSQL and RabbitMQ (needs
# root and both installed, which ensure_* above made sure of), SIGKILLs promsync
# processes and stops those private services. One scenario at a time.
header "cargo test --test chaos   (fault injection, private PostgreSQL + RabbitMQ)"
cargo test --test chaos -- --test-threads=1 --nocapture
