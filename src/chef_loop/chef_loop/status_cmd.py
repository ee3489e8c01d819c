"""`chef status`: a live view of the cells and of a CHEF run - in the terminal (refreshing, or one
snapshot with --once) or as a small web page (--web).

Where the cells are: a running `chef loop` reserves one ROS domain per graph session and labels the
reservation with its run directory (chef_contract.domains: /tmp/chef_ros_domains/<id>.json next to
the <id>.pid lock). `chef status` watches the live reservations of the run it is asked about
(--config/--name/--run), or every live reservation on this host, or exactly the --domain ids given
(a graph started by hand, `chef run sim --domain 7`), or the cells of a lab file (--lab: real cells
on other machines, each in its own domain, discovered across the LAN; docs/multi_host.md).
The domain list is looked at again every DOMAIN_RESCAN_S, so a loop's next session is picked up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional, Sequence

from chef_contract.domains import MAX_DOMAIN_ID
from chef_loop.status_model import FleetSnapshot, format_text, run_progress

DOMAIN_RESCAN_S = 3.0       # s between looks at the live domain reservations
RUN_REREAD_S = 2.0          # s between reads of the run directory (state.json, catalog)
DISCOVERY_ENV = 'ROS_AUTOMATIC_DISCOVERY_RANGE'

EPILOGS = {'status': """\
examples:
  chef status                          every live CHEF cell on this host, refreshed every second
  chef status --config default         the default run: its stage progress and its live cells
  chef status --once --json            one snapshot as JSON (scripts), after --wait seconds of listening
  chef status --domain 7               the cells of a graph started with `chef run sim --domain 7`
  chef status --web --port 8765        the same facts as a web page on http://127.0.0.1:8765/
  chef status --lab config/multi_host/lab.yaml   real cells on other machines (docs/multi_host.md)

Per cell: state (running | idle | estop | offline), the current episode and tick, the tick rate
measured from the joint states received, the recorder's dropped messages since it started. Per run:
the stages of state.json, the running one, its ended episodes in the store, and the loop's current
session (episodes done / wanted). Discovery range: $ROS_AUTOMATIC_DISCOVERY_RANGE, else LOCALHOST
(what the loop's cells use); with --lab, the lab file's (SUBNET, static peers or a discovery server).
"""}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--config', default=None, help='the run of this CHEF config (config/chef/<name>.yaml)')
    p.add_argument('--name', default=None, help='run name (with --config: overrides its name)')
    p.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                   help='with --config: a config override as for chef loop (e.g. runs_dir=/data/runs)')
    p.add_argument('--run', type=Path, default=None, help='a run directory (runs/<name>)')
    p.add_argument('--domain', type=int, action='append', default=None, metavar='ID',
                   help='watch this ROS domain (repeatable; default: the live CHEF reservations)')
    p.add_argument('--lab', type=Path, default=None,
                   help="a lab file (config/multi_host/lab.yaml): watch its cells' domains with its discovery "
                        'settings')
    p.add_argument('--once', action='store_true', help='print one snapshot and exit')
    p.add_argument('--json', action='store_true', help='with --once: the snapshot as JSON')
    p.add_argument('--wait', type=float, default=3.0,
                   help='seconds to listen before the first snapshot (default 3: discovery + tick rate)')
    p.add_argument('--interval', type=float, default=1.0, help='terminal refresh period, s (default 1)')
    p.add_argument('--duration', type=float, default=None, help='stop after this many seconds')
    p.add_argument('--web', action='store_true', help='serve the view as a web page instead')
    p.add_argument('--host', default='127.0.0.1', help='--web: address to bind (default 127.0.0.1)')
    p.add_argument('--port', type=int, default=8765, help='--web: port (default 8765; 0 = any free port)')


# --- which run, which domains (ROS-free) -----------------------------------------------------------
def resolve_run(args) -> Optional[Path]:
    if args.run is not None:
        if not (args.run / 'state.json').is_file():
            raise FileNotFoundError(f'--run {args.run}: no state.json there (not a CHEF run directory)')
        return args.run.resolve()
    if args.config or args.name or args.overrides:
        from chef_loop.config import load_loop_config
        cfg = load_loop_config(args.config or 'default',
                               list(args.overrides) + ([f'name={args.name}'] if args.name else []))
        return cfg.run_dir.resolve()
    return None


def choose_domains(explicit: Optional[Sequence[int]], reservations, run_dir: Optional[Path]) -> List[int]:
    """--domain ids if given; else the live reservations labelled with `run_dir`; else all of them."""
    if explicit:
        bad = [d for d in explicit if not 0 <= d <= MAX_DOMAIN_ID]
        if bad:
            raise ValueError(f'--domain {bad[0]}: ROS domain ids are 0-{MAX_DOMAIN_ID}')
        return sorted(set(explicit))
    if run_dir is not None:
        return sorted({r.domain for r in reservations if r.label == str(run_dir)})
    return sorted({r.domain for r in reservations})


def run_from_reservations(reservations) -> Optional[Path]:
    """The run whose cells are live, when exactly one labelled run holds domains."""
    labels = {r.label for r in reservations if r.label and (Path(r.label) / 'state.json').is_file()}
    return Path(labels.pop()) if len(labels) == 1 else None


# --- the live source -------------------------------------------------------------------------------
class StatusSource:
    """Watches the chosen domains (re-chosen every DOMAIN_RESCAN_S) and builds snapshots; `snapshot()`
    may be called from several threads (the web server's)."""

    def __init__(self, args):
        from chef_contract.domains import live_reservations
        from chef_loop.status_watch import FleetWatch
        self.args = args
        self._reservations = live_reservations
        self.run_dir = resolve_run(args)
        self.auto_run = self.run_dir is None and not args.domain
        self.watch = FleetWatch()
        self._scanned = 0.0
        self._run_cache = (None, None, '')           # (monotonic read time, RunProgress, note)
        self._lock = threading.Lock()
        self.rescan()

    def rescan(self) -> None:
        res = self._reservations()
        if self.auto_run:
            self.run_dir = run_from_reservations(res) or self.run_dir
        self.watch.watch(choose_domains(self.args.domain, res, None if self.auto_run else self.run_dir))
        self._scanned = time.monotonic()

    def _run(self):
        t, cached, note = self._run_cache
        if self.run_dir is None or (t is not None and time.monotonic() - t < RUN_REREAD_S):
            return cached, note
        try:
            cached, note = run_progress(self.run_dir), ''
        except (OSError, ValueError) as exc:
            cached, note = None, f'run: {exc}'
        self._run_cache = (time.monotonic(), cached, note)
        return cached, note

    def snapshot(self) -> FleetSnapshot:
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> FleetSnapshot:
        if time.monotonic() - self._scanned > DOMAIN_RESCAN_S and not self.args.domain:
            self.rescan()
        run, note = self._run()
        notes = [note] if note else []
        if not self.watch.domains:
            notes.append('no live CHEF domain reservation' + (f' for {self.run_dir}' if self.run_dir else '')
                         + ' on this host (pass --domain ID for a graph started by hand)')
        return FleetSnapshot(cells=self.watch.views(), domains=self.watch.domains, run=run,
                             fleet=self.watch.progress(), notes=notes)

    def close(self) -> None:
        self.watch.close()


def main(args) -> int:
    if args.wait < 0:
        raise ValueError(f'--wait {args.wait}: must be >= 0 s')
    if args.interval <= 0:
        raise ValueError(f'--interval {args.interval}: must be > 0 s')
    if args.duration is not None and args.duration <= 0:
        raise ValueError(f'--duration {args.duration}: must be > 0 s')
    if args.json and not args.once:
        raise ValueError('--json needs --once (the refreshing views are text or --web)')
    if not 0 <= args.port <= 65535:
        raise ValueError(f'--port {args.port}: must be 0-65535')
    choose_domains(args.domain, (), None)            # a bad --domain stops here, before any DDS
    resolve_run(args)                                # so does a --run that is not a run
    if args.lab is not None:
        if args.domain:
            raise ValueError('--lab names the domains already; drop --domain')
        from chef_loop.lab import hub_env, load_lab
        lab = load_lab(args.lab)
        os.environ.update(hub_env(lab))                  # before rclpy starts: discovery across the LAN
        args.domain = [c.domain for c in lab.cells]
    os.environ.setdefault(DISCOVERY_ENV, 'LOCALHOST')     # what the loop's cells use
    source = StatusSource(args)
    deadline = time.monotonic() + args.duration if args.duration is not None else None
    try:
        if args.web:
            return _serve(source, args, deadline)
        time.sleep(args.wait if args.once else min(args.wait, args.interval))
        if args.once:
            snap = source.snapshot()
            print(json.dumps(snap.to_dict(), indent=1, sort_keys=True) if args.json else format_text(snap))
            return 0
        while deadline is None or time.monotonic() < deadline:
            text = format_text(source.snapshot())
            sys.stdout.write('\x1b[H\x1b[2J' + text + '\n' if sys.stdout.isatty() else text + '\n\n')
            sys.stdout.flush()
            time.sleep(args.interval)
        return 0
    finally:
        source.close()


def _serve(source: StatusSource, args, deadline: Optional[float]) -> int:
    from chef_loop.status_web import StatusServer
    server = StatusServer(source.snapshot, args.host, args.port)
    print(f'chef status: serving {server.url} (Ctrl-C stops)', flush=True)
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
        return 0
    finally:
        server.close()
