"""The fleet view behind `chef status`, ROS-free: what each live cell is doing and how far the run is.

`CellTracker` turns a cell's contract messages (episode events, step info, per-tick joint states,
recorder / safety status, policy info), each with the wall time it arrived, into a `CellView`;
`run_progress` reads a run directory (state.json through RunState, the episode catalog) into a
`RunProgress`; `FleetSnapshot` holds both plus the loop's `FleetProgress` and renders as JSON (the
web page's endpoint) or as plain text (the terminal view). chef_loop.status_watch feeds the trackers
from DDS; nothing here imports rclpy.
"""

from __future__ import annotations

import collections
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Deque, Dict, List, Optional

from chef_contract.events import EpisodeEvent
from chef_contract.payloads import FleetProgress, PolicyInfo, RecorderStatus, StepInfo

TICK_RATE_WINDOW_S = 3.0     # s: the tick rate is measured over the ticks received in the last 3 s
OFFLINE_QUIET_S = 2.0        # s: a cell whose graph lost its publisher is offline once this quiet
CELL_STATES = ('running', 'idle', 'estop', 'offline', 'unknown')


class TickRate:
    """Ticks per second over a sliding window of arrival times (s, any monotonic clock)."""

    def __init__(self, window_s: float = TICK_RATE_WINDOW_S):
        if window_s <= 0:
            raise ValueError(f'tick-rate window must be > 0 s, got {window_s}')
        self.window_s = window_s
        self._times: Deque[float] = collections.deque()

    def add(self, t: float) -> None:
        self._times.append(t)
        self._trim(t)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def hz(self, now: float) -> float:
        """(n - 1) / span of the ticks inside the window ending at `now`; 0 with fewer than 2."""
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


@dataclass
class CellView:
    """One cell as `chef status` shows it."""

    cell: str                            # namespace, e.g. 'cell0'
    domain: int                          # ROS domain it was found on
    state: str                           # one of CELL_STATES
    episode_id: str = ''                 # the running episode, else the last one seen
    tick: Optional[int] = None           # control tick within that episode
    tick_rate_hz: float = 0.0            # measured from the per-tick joint states received
    triplet: str = ''
    stage: str = ''                      # the episode's CHEF tags
    iteration: Optional[int] = None
    policy_id: str = ''
    episodes_ended: int = 0              # end events seen since the watch started
    recorder_ready: Optional[bool] = None
    recorder_drops: Optional[int] = None     # messages the recorder lost since it started (None: unknown)
    recorder_episodes: Optional[int] = None  # bags it published since it started
    safety: str = ''                     # safety filter state: ok | stale | estop ('' = not heard)
    last_heard_s: Optional[float] = None     # s since the last message of this cell


class CellTracker:
    """Everything heard from one cell; `view(now)` summarises it. Times are wall seconds."""

    def __init__(self, cell: str, domain: int, tick_window_s: float = TICK_RATE_WINDOW_S):
        self.cell, self.domain = cell, domain
        self.rate = TickRate(tick_window_s)
        self.online = True                   # False: the cell's episode-event publisher is gone (watcher)
        self.last_event: Optional[EpisodeEvent] = None
        self.running = False
        self.ticks_since_start = 0
        self.step: Optional[StepInfo] = None
        self.recorder: Optional[RecorderStatus] = None
        self.policy: Optional[PolicyInfo] = None
        self.safety = ''
        self.ended = 0
        self.last_heard: Optional[float] = None

    def _heard(self, t: float) -> None:
        self.last_heard = t if self.last_heard is None else max(self.last_heard, t)

    def on_event(self, ev: EpisodeEvent, t: float) -> None:
        self._heard(t)
        if ev.event == 'start':
            self.running, self.ticks_since_start, self.step = True, 0, None
        else:                                # end | abort (the history replays in order)
            self.running = False
            self.ended += ev.event == 'end'
        self.last_event = ev

    def on_step(self, info: StepInfo, t: float) -> None:
        self._heard(t)
        if info.tick is not None:
            self.step = info

    def on_tick(self, t: float) -> None:
        """One per-tick observation (joint_states) arrived."""
        self._heard(t)
        self.rate.add(t)
        if self.running:
            self.ticks_since_start += 1

    def on_recorder(self, status: RecorderStatus, t: float) -> None:
        self._heard(t)
        self.recorder = status

    def on_policy(self, info: PolicyInfo, t: float) -> None:
        self._heard(t)
        self.policy = info

    def on_safety(self, state: str, t: float) -> None:
        self._heard(t)
        self.safety = state

    def tick(self) -> Optional[int]:
        ev = self.last_event
        if ev is None:
            return None
        if not self.running:
            return ev.steps
        if self.step is not None and self.step.episode_id == ev.episode_id:
            return self.step.tick
        return max(0, self.ticks_since_start - 1)

    def state(self, now: float) -> str:
        if not self.online and (self.last_heard is None or now - self.last_heard > OFFLINE_QUIET_S):
            return 'offline'
        if self.safety == 'estop':
            return 'estop'
        if self.running:
            return 'running'
        return 'idle' if self.last_heard is not None else 'unknown'

    def view(self, now: float) -> CellView:
        ev = self.last_event
        tags = ev.tags if ev is not None and isinstance(ev.tags, dict) else {}
        policy = tags.get('policy_id') or (self.policy.policy_id if self.policy is not None else '')
        return CellView(
            cell=self.cell, domain=self.domain, state=self.state(now),
            episode_id=ev.episode_id if ev is not None else '', tick=self.tick(),
            tick_rate_hz=round(self.rate.hz(now), 2), triplet=ev.triplet if ev is not None else '',
            stage=str(tags.get('stage', '')), iteration=tags.get('iteration'), policy_id=str(policy),
            episodes_ended=self.ended,
            recorder_ready=self.recorder.ready if self.recorder is not None else None,
            recorder_drops=self.recorder.dropped_messages if self.recorder is not None else None,
            recorder_episodes=self.recorder.episodes_published if self.recorder is not None else None,
            safety=self.safety,
            last_heard_s=round(now - self.last_heard, 2) if self.last_heard is not None else None)


# --- the run ---------------------------------------------------------------------------------------
@dataclass
class StageRow:
    iteration: int
    stage: str
    status: str                          # pending | running | done
    wall_s: Optional[float] = None
    resumed: int = 0


@dataclass
class RunProgress:
    """How far a CHEF run is, from its directory alone (works without any live cell)."""

    run_dir: str
    stages: List[StageRow] = field(default_factory=list)
    current: Optional[StageRow] = None   # the running stage, else the newest done one
    stage_episodes: int = 0              # ended episodes in the store tagged with `current`
    store_episodes: int = 0              # every episode in the store
    data_dir: str = ''


def run_progress(run_dir: Path, data_dir: Optional[Path] = None) -> RunProgress:
    """Read runs/<name>/ (state.json via RunState; the catalog of `data_dir`, default the run's)."""
    from chef_loop.state import RunState
    run_dir = Path(run_dir)
    if not (run_dir / 'state.json').is_file():
        raise FileNotFoundError(f'{run_dir}: no state.json (not a CHEF run directory, or not started)')
    state = RunState(run_dir)
    rows = []
    for i in state.iterations():
        for name, st in state.data['iterations'][str(i)].items():
            rows.append(StageRow(i, name, st.get('status', 'pending'), (st.get('artefacts') or {}).get('wall_s'),
                                 int(st.get('resumed', 0))))
    running = [r for r in rows if r.status == 'running']
    done = [r for r in rows if r.status == 'done']
    current = running[-1] if running else (done[-1] if done else None)
    data_dir = Path(data_dir) if data_dir is not None else _run_data_dir(run_dir)
    out = RunProgress(str(run_dir), rows, current, data_dir=str(data_dir))
    catalog = data_dir / 'catalog.sqlite'
    if catalog.is_file():
        from chef_recorder.catalog import Catalog
        with Catalog(data_dir) as cat:
            out.store_episodes = len(cat)
            if current is not None:
                out.stage_episodes = len(cat.rows(stage=current.stage, iteration=current.iteration,
                                                  status='end'))
    return out


def _run_data_dir(run_dir: Path) -> Path:
    """The store a run writes to: `data_dir` of its saved config.yaml, else runs/<name>/data."""
    cfg = run_dir / 'config.yaml'
    if cfg.is_file():
        import yaml
        data_dir = (yaml.safe_load(cfg.read_text()) or {}).get('data_dir') or ''
        if data_dir:
            return Path(data_dir)
    return run_dir / 'data'


# --- one snapshot, as JSON or text -----------------------------------------------------------------
@dataclass
class FleetSnapshot:
    cells: List[CellView]
    domains: List[int]
    run: Optional[RunProgress] = None
    fleet: List[FleetProgress] = field(default_factory=list)    # one per session that published one
    taken_unix: float = field(default_factory=time.time)
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        """The facts, plus `view`: the text the terminal shows (run and session lines, one row per
        cell in CELL_COLUMNS order), so the web page renders the same strings."""
        return dict(asdict(self), view={'lines': summary_lines(self),
                                        'columns': [name for name, _ in CELL_COLUMNS],
                                        'rows': [cell_row(c) for c in self.cells]})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _fmt(v, spec: str = '') -> str:
    if v is None or v == '':
        return '-'
    return format(v, spec) if spec else str(v)


CELL_COLUMNS = (('cell', 7), ('dom', 4), ('state', 8), ('episode', 12), ('tick', 5), ('Hz', 6),
                ('rec drops', 9), ('stage', 10), ('policy', 18), ('heard', 6))


def cell_row(c: CellView) -> List[str]:
    """One cell's table cells, in CELL_COLUMNS order (the terminal view and the web page agree)."""
    stage = f'{c.stage}/{c.iteration}' if c.stage and c.iteration is not None else c.stage
    return [c.cell, str(c.domain), c.state, c.episode_id[:12] or '-', _fmt(c.tick), f'{c.tick_rate_hz:.1f}',
            _fmt(c.recorder_drops), stage or '-', (c.policy_id or '-')[:18],
            f'{c.last_heard_s:.1f}s' if c.last_heard_s is not None else '-']


def progress_line(p: FleetProgress) -> str:
    where = f'iteration {p.iteration} {p.stage}' if p.iteration is not None else (p.stage or 'session')
    label = f' ({p.label})' if p.label else ''
    return (f'{where}{label}: {p.done}/{p.jobs} episodes done, {p.succeeded} succeeded, {p.failed} failed, '
            f'{len(p.running)} running')


def run_lines(r: RunProgress) -> List[str]:
    lines = [f'run {r.run_dir} (store {r.data_dir}: {r.store_episodes} episodes)']
    if r.current is not None:
        c = r.current
        lines.append(f'  now: iteration {c.iteration} {c.stage} {c.status}'
                     f'{f" (resumed {c.resumed}x)" if c.resumed else ""}, {r.stage_episodes} ended episodes '
                     f'tagged {c.stage}/{c.iteration} in the store')
    lines.append('  stages: ' + (', '.join(
        f'{s.iteration}:{s.stage} {s.status}{f" {s.wall_s:.0f}s" if s.wall_s is not None else ""}'
        for s in r.stages) or 'none started'))
    return lines


def summary_lines(snap: FleetSnapshot) -> List[str]:
    """The run's progress and the loop's sessions, as lines."""
    lines = run_lines(snap.run) if snap.run is not None else []
    return lines + ['session: ' + progress_line(p) for p in snap.fleet]


def format_text(snap: FleetSnapshot) -> str:
    """The terminal view: run progress, the loop's session progress, one row per cell."""
    when = time.strftime('%H:%M:%S', time.localtime(snap.taken_unix))
    lines = [f'chef status  {when}  domains {",".join(map(str, snap.domains)) or "-"}']
    lines += summary_lines(snap)
    lines.append('')
    lines.append('  '.join(name.ljust(w) for name, w in CELL_COLUMNS).rstrip())
    for c in snap.cells:
        lines.append('  '.join(v.ljust(w) for v, (_, w) in zip(cell_row(c), CELL_COLUMNS)).rstrip())
    if not snap.cells:
        lines.append('(no live cell found)')
    lines += snap.notes
    return '\n'.join(lines)
