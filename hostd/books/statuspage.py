"""The daemon's status page (issue 14): plain HTML, rendered from what the store and the device
report, with a little JavaScript that refreshes the device block. No build step, no library.

It shows the device (id, certificate, counter, clock, a journal fill gauge, faults), the last
invoices with a receipt link and their ``dgi_status`` badge (seed 002: green synced, yellow
queued, red failed), today's totals per tax group and an SVG bar chart of the last 30 days, and
the webhook (and, once configured, sync) health. Read-only: it only links to GETs.
"""

import html
from urllib.parse import quote

from protocol import timefmt
from hostd.intake.amounts import money_text

BADGES = {"synced": ("green", "Real-time"), "queued": ("yellow", "Queued"), "failed": ("red", "Retry")}


def chart(days, width=600, height=120):
    """An SVG bar chart of [(day "YYYY-MM-DD", total minor units)], oldest first."""
    top = max([total for _, total in days] + [1])
    bar = width / max(1, len(days))
    bars = []
    for i, (day, total) in enumerate(days):
        h = int((height - 20) * max(total, 0) / top)
        bars.append('<rect class="bar" data-day="%s" data-total="%d" x="%.1f" y="%d" width="%.1f" height="%d">'
                    '<title>%s: %s</title></rect>' % (day, total, i * bar + 1, height - 20 - h, bar - 2, h, day,
                                                      money_text(total)))
    return ('<svg id="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" '
            'role="img" aria-label="daily totals, last %d days">%s</svg>' % (width, height, width, height, len(days),
                                                                           "".join(bars)))


def _revenue(summary):
    return ", ".join("%s %s" % (c["revenue_incl_tax"], c["currency"]) for c in summary.get("currencies", ())
                     if c.get("groups")) or "0"


def render(status, invoices, today_groups, days, webhooks, token=None, closures=()):
    """The page. ``status``: the outlet status payload; ``invoices``: invoice views, newest first;
    ``today_groups``: [(code, base, tax)]; ``days``: [(day, total)]; ``webhooks``: {state: count};
    ``closures``: report views (hostd/api/reports.py) of the last closures, newest first."""
    e = html.escape
    fill = status.get("journal_fill") or 0.0
    clock = status.get("clock")
    faults = status.get("fault")
    rows = []
    for inv in invoices:
        colour, label = BADGES.get(inv.get("dgi_status"), ("grey", inv.get("dgi_status") or "?"))
        rows.append('<tr><td><a href="/api/v1/invoices/%s/receipt%s">%s</a></td><td>%s</td><td class="n">%s %s</td>'
                    '<td><span class="badge %s" data-status="%s">%s</span></td></tr>'
                    % (e(inv["fiscal_number"]), e("?token=" + quote(token, safe="")) if token else "",
                       e(inv["fiscal_number"]), e(inv["timestamp"]),
                       e(money_text(int(inv.get("total_minor") or 0))), e(inv.get("currency") or ""), colour,
                       e(inv.get("dgi_status") or ""), e(label)))
    groups = "".join('<tr><td>%s</td><td class="n">%s</td><td class="n">%s</td></tr>'
                     % (e(code), e(money_text(base)), e(money_text(tax))) for code, base, tax in today_groups)
    hooks = ", ".join("%s %d" % (e(k), v) for k, v in sorted(webhooks.items())) or "no webhook deliveries"
    suffix = e("?token=" + quote(token, safe="")) if token else ""
    closed = "".join('<tr data-report="%s"><td><a href="%s%s">%s %s</a></td><td>%s</td><td class="n">%s</td>'
                     '<td><code>%s…</code></td></tr>'
                     % (e(c["report_id"]), e(c["download_url"]), suffix, e(c["type"]), e(c["period"] or ""),
                        e(c["created"]), e(_revenue(c["summary"])), e(c["ledger_hash"][:16])) for c in closures)
    missing = (status.get("closures") or {}).get("missing_z") or []
    closed_note = ('<p class="fault" id="missing-z">No Z closes: %s</p>' % e(", ".join(missing))) if missing else ""
    sync = status.get("sync")
    sync_line = ("Sync: %s pending, last error %s" % (e(str(sync.get("pending_records"))), e(str(sync.get("last_error")))
                                                     if sync.get("last_error") else "none")) if sync else "Sync: off"
    return """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fiscal device %(device)s</title>
<meta name="fiscal-token" content="%(token)s">
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; max-width: 960px; }
section { margin-bottom: 1.5em; } h2 { font-size: 1.1em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: left; } td.n { text-align: right; }
.badge { padding: 1px 6px; border-radius: 4px; font-size: .85em; }
.badge.green { background: #2e7d32; color: #fff; } .badge.yellow { background: #f9a825; color: #000; }
.badge.red { background: #c62828; color: #fff; } .badge.grey { background: #999; color: #fff; }
meter { width: 240px; } .fault { color: #c62828; font-weight: bold; } .bar { fill: #1565c0; }
</style></head>
<body>
<h1>Fiscal device <span id="device-id">%(device)s</span></h1>
<section id="device"><h2>Device</h2>
<table>
<tr><th>State</th><td id="device-state">%(state)s</td></tr>
<tr><th>Counter</th><td id="counter">%(counter)s</td></tr>
<tr><th>Clock</th><td id="clock">%(clock)s</td></tr>
<tr><th>Certificate</th><td id="certificate">%(cert)s</td></tr>
<tr><th>Journal</th><td><meter id="fill" min="0" max="100" low="80" high="90" optimum="10" value="%(fill).2f">%(fill).2f%%</meter>
 <span id="fill-text">%(fill).2f%%</span> full</td></tr>
%(faults)s
</table></section>
<section id="invoices"><h2>Last invoices</h2>
<table><tr><th>Fiscal number</th><th>Time</th><th>Total</th><th>DGI</th></tr>%(rows)s</table></section>
<section id="today"><h2>Today per tax group</h2>
<table><tr><th>Group</th><th>Base</th><th>Tax</th></tr>%(groups)s</table></section>
<section id="history"><h2>Last %(ndays)d days</h2>%(chart)s</section>
<section id="closures"><h2>Last closures</h2>%(closed_note)s
<table><tr><th>Closure</th><th>Made</th><th>Revenue</th><th>Ledger hash</th></tr>%(closed)s</table></section>
<section id="health"><h2>Webhooks and sync</h2><p id="webhooks">%(hooks)s</p><p id="sync">%(sync_line)s</p></section>
<script>
(function () {
  var token = document.querySelector('meta[name="fiscal-token"]').content;
  function refresh() {
    var headers = token ? {"Authorization": "Bearer " + token} : {};
    fetch("/api/v1/outlets/local/status", {headers: headers}).then(function (r) { return r.json(); })
      .then(function (doc) {
        var p = doc.payload || {};
        document.getElementById("counter").textContent = p.counter;
        document.getElementById("device-state").textContent = p.device_state;
        var fill = 100 * (p.journal_fill || 0);
        document.getElementById("fill").value = fill;
        document.getElementById("fill-text").textContent = fill.toFixed(2) + "%%";
        document.body.setAttribute("data-refreshed", "1");
      }).catch(function (err) { document.body.setAttribute("data-refresh-error", String(err)); });
  }
  refresh();
  setInterval(refresh, 10000);
})();
</script>
</body></html>
""" % {"device": e(status.get("device_id") or "?"), "token": e(token or ""), "state": e(status.get("device_state") or "?"),
       "counter": e(str(status.get("counter"))), "clock": e(timefmt.format_time(clock) if clock else "not set"),
       "cert": e(status.get("certificate") or "none"), "fill": 100 * fill,
       "faults": '<tr><th>Fault</th><td class="fault" id="fault">%s</td></tr>' % e(faults) if faults else "",
       "rows": "".join(rows), "groups": groups, "ndays": len(days), "chart": chart(days), "hooks": hooks,
       "closed": closed, "closed_note": closed_note, "sync_line": sync_line}
