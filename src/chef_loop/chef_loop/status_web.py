"""`chef status --web`: the fleet view as a small self-contained web page (stdlib http.server).

GET /             the page (no external assets); its script polls /status.json every POLL_MS and
                  redraws the run, the loop's session progress and one table row per cell
GET /status.json  FleetSnapshot.to_json() of the moment
Binds 127.0.0.1 unless told otherwise (the page shows lab state; nothing on it is secret, but it
needs no audience beyond the machine).
"""

from __future__ import annotations

import html
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from chef_loop.status_model import CELL_COLUMNS, FleetSnapshot

POLL_MS = 1000

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>chef status</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.3em; margin: 0 0 .3em; } .meta { color: #666; }
table { border-collapse: collapse; margin-top: 1em; background: #fff; }
th, td { border: 1px solid #ccc; padding: .3em .7em; text-align: left; font-variant-numeric: tabular-nums; }
th { background: #eee; }
td.state-running { background: #d9f2d9; } td.state-idle { background: #eef; }
td.state-estop, td.state-offline { background: #f8d0d0; font-weight: bold; }
#summary div { margin: .2em 0; } #error { color: #b00; }
</style></head>
<body>
<h1>CHEF fleet</h1>
<div class="meta">updated <span id="updated">never</span> &middot; domains <span id="domains">-</span>
 &middot; <span id="error"></span></div>
<div id="summary"></div>
<table id="cells"><thead><tr>__HEADERS__</tr></thead><tbody></tbody></table>
<div id="notes" class="meta"></div>
<script>
function render(s) {
  document.getElementById('updated').textContent = new Date(s.taken_unix * 1000).toLocaleTimeString();
  document.getElementById('domains').textContent = s.domains.join(', ') || '-';
  const summary = document.getElementById('summary'); summary.textContent = '';
  for (const line of s.view.lines) {              // the terminal view's lines, verbatim
    const d = document.createElement('div'); d.textContent = line.trim();
    if (line.startsWith('session:')) d.className = 'session';
    summary.appendChild(d);
  }
  const body = document.querySelector('#cells tbody'); body.textContent = '';
  s.view.rows.forEach((row, k) => {               // the terminal view's row strings, one <tr> per cell
    const c = s.cells[k], tr = document.createElement('tr');
    tr.dataset.cell = c.cell; tr.dataset.state = c.state; tr.dataset.episode = c.episode_id;
    tr.dataset.tickRate = c.tick_rate_hz;
    row.forEach((v, i) => {
      const td = document.createElement('td'); td.textContent = v;
      td.className = 'col-' + s.view.columns[i].replace(' ', '_');
      if (s.view.columns[i] === 'state') td.classList.add('state-' + c.state);
      tr.appendChild(td);
    });
    body.appendChild(tr);
  });
  document.getElementById('notes').textContent = (s.cells.length ? '' : 'no live cell found. ') +
    s.notes.join(' ');
}
async function poll() {
  try {
    const r = await fetch('status.json', {cache: 'no-store'});
    render(await r.json());
    document.getElementById('error').textContent = '';
  } catch (e) {
    document.getElementById('error').textContent = 'status.json: ' + e;
  }
  setTimeout(poll, __POLL_MS__);
}
poll();
</script></body></html>
"""


def page_html() -> str:
    headers = ''.join(f'<th>{html.escape(name)}</th>' for name, _ in CELL_COLUMNS)
    return PAGE.replace('__HEADERS__', headers).replace('__POLL_MS__', str(POLL_MS))


class StatusServer:
    """Serves the page and `snapshot()` as JSON in a background thread until `close()`."""

    def __init__(self, snapshot: Callable[[], FleetSnapshot], host: str = '127.0.0.1', port: int = 8765):
        page = page_html().encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                path = self.path.split('?', 1)[0]
                if path in ('/', '/index.html'):
                    self._send(200, 'text/html; charset=utf-8', page)
                elif path == '/status.json':
                    self._send(200, 'application/json', snapshot().to_json().encode())
                else:
                    self._send(404, 'text/plain', b'not found\n')

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header('Content-Type', ctype)
                self.send_header('Content-Length', str(len(body)))
                self.send_header('Cache-Control', 'no-store')
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):      # no access log on the terminal
                pass

        try:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise RuntimeError(f'cannot serve on {host}:{port}: {exc.strerror or exc}') from None
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name='chef-status-web')
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f'http://{host}:{port}/'

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=2.0)
