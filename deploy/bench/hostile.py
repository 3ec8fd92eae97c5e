#!/usr/bin/env python3
"""Measures what each known attack costs a promsync build: the answer's status code, the
wall time, and the server's CPU time for the request (from /proc/<pid>/stat).

    deploy/bench/hostile.py [path/to/promsync]     (default: target/release/promsync)

It starts `promsync run` on the embedded default (a fresh SQLite file and the embedded
broker, in a temporary directory) and the Prom simulator as the shop's Prom, makes an
account and a shop, imports one order so there is a product, then throws each attack once
and prints one line per attack. Run it
against two builds to compare them; it changes nothing outside its temporary directory.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests/fixtures/prom/order-pending-cash-on-delivery.json"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def request(port, method, path, body=b"", headers=None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (ConnectionError, http.client.HTTPException, socket.timeout) as e:
        return f"dropped ({type(e).__name__})", b""
    finally:
        conn.close()


def sign(secret, msg_id, ts, body):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def main():
    binary = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "target/release/promsync")
    work = tempfile.mkdtemp(prefix="promsync-hostile-")
    port, metrics_port, sim_port = free_port(), free_port(), free_port()
    sim_origin = f"http://127.0.0.1:{sim_port}"
    env = dict(
        os.environ,
        PROMSYNC_DATABASE_URL=f"sqlite://{work}/promsync.db?mode=rwc",
        PROMSYNC_LISTEN=f"127.0.0.1:{port}",
        PROMSYNC_METRICS_LISTEN=f"127.0.0.1:{metrics_port}",
        PROMSYNC_PROM_ALLOWED_ORIGINS=sim_origin,
        PROMSYNC_LOG_FORMAT="json",
        RUST_LOG="error",
    )
    env.pop("PROMSYNC_BROKER_URL", None)

    def cli(*args):
        out = subprocess.run([binary, *args], env=env, check=True, capture_output=True, text=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    subprocess.run([binary, "migrate"], env=env, check=True, capture_output=True)
    account = cli("account", "create", "--name", "Bench")
    shop = cli("shop", "create", "--account", str(account["account_id"]), "--name", "S",
               "--prom-url", sim_origin, "--prom-token", "prom-token")
    admin = {"Authorization": f"Bearer {account['admin_token']}",
             "Content-Type": "application/json"}
    # The simulator answers the product lookup of the seed order (404: the product is
    # created from the order line).
    sim = subprocess.Popen([binary, "simulate-prom", "--listen", f"127.0.0.1:{sim_port}",
                            "--orders", "0"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    server = subprocess.Popen([binary, "run"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while request(port, "GET", "/healthz", timeout=2)[0] != 200:
            if time.time() > deadline:
                sys.exit("promsync did not start")
            time.sleep(0.2)

        # One imported order, so the account has a product for the order attacks.
        body = json.dumps({"order": json.loads(FIXTURE.read_text())["order"]}).encode()
        ts = str(int(time.time()))
        request(port, "POST", f"/webhooks/prom/{shop['shop_id']}", body, {
            "Content-Type": "application/json", "webhook-id": "msg_seed",
            "webhook-timestamp": ts,
            "webhook-signature": sign(shop["webhook_secret"], "msg_seed", ts, body)})
        product_id = None
        while product_id is None and time.time() < deadline:
            products = json.loads(request(port, "GET", "/api/products", headers=admin)[1] or b"{}")
            product_id = next((p["id"] for p in products.get("products", [])), None)
            time.sleep(0.2)
        _, clerk = request(port, "POST", "/api/employees",
                           json.dumps({"name": "clerk", "permissions": []}).encode(), admin)
        clerk_token = json.loads(clerk)["token"]

        flood_body = json.dumps({"order_id": 7, "pad": "x" * (250 * 1024)}).encode()
        ts = str(int(time.time()))
        attacks = [
            ("signature flood: 30,000 candidates, 120 KB header, 256 KB body", "POST",
             f"/webhooks/prom/{shop['shop_id']}", flood_body,
             {"Content-Type": "application/json", "webhook-id": "msg_flood",
              "webhook-timestamp": ts, "webhook-signature": " ".join(["v1,"] * 30_000)}),
            ("GET /api/orders?page=2^64-1", "GET", "/api/orders?page=18446744073709551615",
             b"", admin),
            ("POST /api/orders with price 79228162514264337593543950335", "POST",
             "/api/orders", json.dumps({"items": [{"product_id": product_id, "quantity": "2",
                                                   "price": "79228162514264337593543950335"}]}
                                       ).encode(), admin),
            ("POST /api/orders with quantity 1e20", "POST", "/api/orders",
             b'{"items": [{"product_id": %d, "quantity": 1e20, "price": "1"}]}' % product_id,
             admin),
            ("POST /api/orders/refresh with 30,000 ids", "POST", "/api/orders/refresh",
             json.dumps({"order_ids": list(range(1, 30_001))}).encode(), admin),
            ("PATCH /api/shops/{id} prom_url=http://127.0.0.1:9999", "PATCH",
             f"/api/shops/{shop['shop_id']}", b'{"prom_url": "http://127.0.0.1:9999"}', admin),
            ("POST /api/employees by an employee with no permissions", "POST",
             "/api/employees", b'{"name": "mallory", "permissions": ["manage_integrations"]}',
             {"Authorization": f"Bearer {clerk_token}", "Content-Type": "application/json"}),
            ("GET /metrics on the public listener", "GET", "/metrics", b"", {}),
        ]
        print(f"{'attack':<64} {'status':>22} {'wall ms':>9} {'server CPU ms':>14}")
        for name, method, path, payload, headers in attacks:
            cpu_before = cpu_seconds(server.pid)
            started = time.perf_counter()
            status, _ = request(port, method, path, payload, headers)
            wall = (time.perf_counter() - started) * 1000
            cpu = (cpu_seconds(server.pid) - cpu_before) * 1000
            print(f"{name:<64} {str(status):>22} {wall:>9.1f} {cpu:>14.0f}")
    finally:
        for process in (server, sim):
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
