#!/usr/bin/env python3
"""Renders the dashboard (promsync.json) as a picture from a running Prometheus, without
Grafana: writes an HTML page that asks Prometheus' HTTP API for each panel's queries over
the last minutes and draws them, then screenshots it with headless Chromium. The README's
docs/screenshots/dashboard.png was made this way, with Debian's prometheus scraping a
`promsync demo` under traffic (deploy/prometheus/prometheus.yml shows a scrape config).

    deploy/grafana/render.py --prometheus http://127.0.0.1:9090 --minutes 5 \\
        --out docs/screenshots/dashboard.png

Needs `chromium` (Debian: apt-get install -y chromium). Only the standard library.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

PAGE = r"""<!doctype html><html><head><meta charset="utf-8"><style>
body{background:#111217;color:#ccccdc;font:13px sans-serif;margin:12px;width:1376px}
h1{font-size:18px;margin:4px 4px 12px}
.grid{display:grid;grid-template-columns:680px 680px;gap:12px}
.p{background:#181b1f;border:1px solid #2c3235;border-radius:3px;padding:8px;height:250px;position:relative}
.t{font-weight:600;margin-bottom:4px}
.stat{font-size:56px;font-weight:600;text-align:center;margin-top:36px}
.lg{font-size:11px;position:absolute;bottom:6px;left:8px;right:8px;white-space:nowrap;overflow:hidden}
.lg span{margin-right:10px}
svg text{fill:#8e8e8e;font-size:10px}
</style></head><body><h1>__TITLE__</h1><div class="grid" id="g"></div><script>
const DASH = __DASHBOARD__, PROM = __PROMETHEUS__, WINDOW = __WINDOW__;
const COLORS = ["#73bf69","#f2cc0c","#5794f2","#ff9830","#f2495c","#b877d9","#8ab8ff","#fade2a","#96d98d","#ffb357"];
function fmt(v, unit) {
  if (!isFinite(v)) return "-";
  if (unit === "s") return v < 1 ? (v * 1000).toFixed(v < 0.01 ? 1 : 0) + " ms" : v.toFixed(v < 10 ? 1 : 0) + " s";
  if (unit === "reqps" || unit === "ops") return (v < 10 ? v.toFixed(2) : v.toFixed(0)) + "/s";
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}
function legend(format, metric) { return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k) => metric[k] ?? ""); }
async function query(expr, start, end) {
  const url = PROM + "/api/v1/query_range?" + new URLSearchParams({query: expr, start, end, step: "2"});
  return (await (await fetch(url)).json()).data.result;
}
async function draw(panel, el) {
  const end = Math.floor(Date.now() / 1000), start = end - WINDOW, series = [];
  for (const t of panel.targets)
    for (const s of await query(t.expr, start, end))
      series.push({name: legend(t.legendFormat, s.metric),
                   pts: s.values.map(([x, y]) => [x, parseFloat(y)]).filter(p => isFinite(p[1]))});
  const unit = panel.fieldConfig.defaults.unit;
  if (panel.type === "stat") {
    const steps = panel.fieldConfig.defaults.thresholds.steps;
    el.innerHTML += '<div class="stat">' + series.map(s => {
      const v = s.pts.length ? s.pts[s.pts.length - 1][1] : NaN;
      let color = steps[0].color;
      for (const step of steps) if (step.value !== null && v >= step.value) color = step.color;
      return '<span style="margin:0 16px;color:' + (color === "green" ? "#73bf69" : "#f2495c") + '">' + fmt(v, unit) + "</span>";
    }).join("") + "</div>";
    el.innerHTML += '<div class="lg">' + series.map(s => "<span>" + s.name + "</span>").join("") + "</div>";
    return;
  }
  const W = 660, H = 190, L = 60, B = 18;
  let top = 0;
  for (const s of series) for (const p of s.pts) top = Math.max(top, p[1]);
  top = (top || 1) * 1.1;
  const x = t => L + (t - start) / (end - start) * (W - L - 20), y = v => H - B - v / top * (H - B - 6);
  let svg = '<svg width="' + W + '" height="' + H + '">';
  for (let i = 0; i <= 4; i++) {
    const v = top * i / 4;
    svg += '<line x1="' + L + '" x2="' + (W - 20) + '" y1="' + y(v) + '" y2="' + y(v) + '" stroke="#2c3235"/>' +
      '<text x="' + (L - 4) + '" y="' + (y(v) + 3) + '" text-anchor="end">' + fmt(v, unit) + "</text>";
  }
  for (let t = start; t <= end; t += Math.max(60, Math.ceil(WINDOW / 6 / 60) * 60))
    svg += '<text x="' + x(t) + '" y="' + (H - 4) + '" text-anchor="middle">' + new Date(t * 1000).toISOString().substr(11, 5) + "</text>";
  series.forEach((s, i) => {
    if (s.pts.length) svg += '<polyline fill="none" stroke-width="1.5" stroke="' + COLORS[i % COLORS.length] + '" points="' +
      s.pts.map(p => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ") + '"/>';
  });
  el.innerHTML += svg + '</svg><div class="lg">' + series.map((s, i) =>
    '<span style="color:' + COLORS[i % COLORS.length] + '">&#9632;</span><span>' + s.name + "</span>").join("") + "</div>";
}
(async () => {
  for (const panel of DASH.panels) {
    const el = document.createElement("div");
    el.className = "p";
    el.innerHTML = '<div class="t">' + panel.title + "</div>";
    document.getElementById("g").appendChild(el);
    try { await draw(panel, el); } catch (e) { el.innerHTML += "<div>" + e + "</div>"; }
  }
})();
</script></body></html>
"""


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--minutes", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(here, "..", "..", "docs", "screenshots", "dashboard.png"))
    parser.add_argument("--chromium", default="chromium")
    args = parser.parse_args()
    with open(os.path.join(here, "promsync.json"), encoding="utf-8") as f:
        dashboard = json.load(f)
    rows = (len(dashboard["panels"]) + 1) // 2
    page = (PAGE.replace("__DASHBOARD__", json.dumps(dashboard))
            .replace("__PROMETHEUS__", json.dumps(args.prometheus.rstrip("/")))
            .replace("__WINDOW__", str(args.minutes * 60))
            .replace("__TITLE__", f"promsync &mdash; {dashboard['title']} dashboard, last {args.minutes} minutes"))
    with tempfile.TemporaryDirectory() as tmp:
        html = os.path.join(tmp, "dashboard.html")
        with open(html, "w", encoding="utf-8") as f:
            f.write(page)
        # The page (file://) asks Prometheus on another origin: web security off, in a
        # throwaway profile.
        subprocess.run([
            args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--disable-web-security", f"--user-data-dir={os.path.join(tmp, 'profile')}",
            f"--window-size=1400,{60 + rows * 280}", "--virtual-time-budget=20000",
            f"--screenshot={os.path.abspath(args.out)}", "file://" + html,
        ], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
