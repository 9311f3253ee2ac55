"""Renderers of a Report: a rich table (terminal), JSON (stable schema, docs/check.md), standalone HTML."""

from __future__ import annotations

import json

import jinja2
from rich.table import Table
from rich.text import Text

from b2ct.check.model import Report, Status

_STYLE = {Status.PASS: "green", Status.WARN: "yellow", Status.FAIL: "bold red"}


def table(report: Report) -> Table:
    counts = report.counts()
    t = Table(
        title=f"b2ct check — site {report.site}: {report.status.value.upper()} "
        f"({counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail, {report.seconds:.1f}s)",
        title_justify="left",
        show_lines=False,
    )
    for col in ("host", "check", "status", "reason / hint"):
        t.add_column(col, overflow="fold")
    for h in report.hosts:
        label = h.name if h.reachable else f"{h.name} (unreachable)"
        for i, c in enumerate(h.checks):
            reason = Text(c.reason)
            if c.hint:
                reason.append(f"\n→ {c.hint}", style="dim")
            t.add_row(
                label if i == 0 else "",
                c.check,
                Text(c.status.value.upper(), style=_STYLE[c.status]),
                reason,
                end_section=i == len(h.checks) - 1,
            )
    return t


def to_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2) + "\n"


_HTML = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True).from_string(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>b2ct check — {{ r.site }} — {{ r.status.value | upper }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; width: 100%; margin-bottom: 2em; }
th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #ddd; vertical-align: top; }
.pass { color: #176f2c; } .warn { color: #8a6100; } .fail { color: #b00020; font-weight: bold; }
.badge { display: inline-block; min-width: 3.5em; text-align: center; border-radius: .3em; padding: 0 .3em; }
.badge.pass { background: #dff5e3; } .badge.warn { background: #fff2cc; } .badge.fail { background: #fde0e4; }
.hint { color: #666; font-size: .9em; }
h2 { margin-bottom: .2em; }
</style>
</head>
<body>
<h1>b2ct check — site {{ r.site }}:
 <span class="{{ r.status.value }}">{{ r.status.value | upper }}</span></h1>
<p>Inventory {{ r.inventory }}, started {{ r.started }}, {{ '%.1f' % r.seconds }}s.
{{ counts.pass }} pass, {{ counts.warn }} warn, {{ counts.fail }} fail.</p>
{% for h in r.hosts %}
<section class="host" id="host-{{ h.name }}" data-status="{{ h.status.value }}">
<h2>{{ h.name }} <small>({{ h.klass }}, {{ h.address or 'no address' }}
{%- if not h.reachable %}, unreachable{% endif %})</small>
 <span class="badge {{ h.status.value }}">{{ h.status.value | upper }}</span></h2>
<table>
<thead><tr><th>check</th><th>status</th><th>reason</th><th>hint</th></tr></thead>
<tbody>
{% for c in h.checks %}
<tr class="check" data-check="{{ c.check }}" data-status="{{ c.status.value }}">
<td>{{ c.check }}</td><td><span class="badge {{ c.status.value }}">{{ c.status.value | upper }}</span></td>
<td>{{ c.reason }}</td><td class="hint">{{ c.hint }}</td></tr>
{% endfor %}
</tbody>
</table>
</section>
{% endfor %}
</body>
</html>
"""
)


def html(report: Report) -> str:
    return _HTML.render(r=report, counts=report.counts())
