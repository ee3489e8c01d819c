"""Fleet scaling: total lockstep env steps/s of N full sim cells (config/graphs/sim.yaml: sim_bridge, safety_filter, policy:=scripted, recorder; one process per node) against N raw-env processes (env + scripted expert) in the same run, N = 1, 2, 4, presets state and 3x64; CPU per tick of every graph process.

Measurement, per (preset, N), interleaved so background load hits both sides:
  raw -> fleet -> raw again (the same N raw worker processes, idle while the fleet runs); the ratio
  is the fleet's steps/s over the mean of the two raw runs.
Raw: N processes (multiprocessing, spawn), each RgbStackingEnv + ScriptedStacker, released together
  for `raw_s` wall seconds; total = sum of steps / wall.
Fleet: the sim graph's nodes resolved from config/graphs/sim.yaml exactly as `chef run sim cells:=N
  clock:=lockstep preset:=fast policy:=scripted record:=true [images:=false]` starts them (one process per
  node, a fresh ROS domain, a temporary data_dir); the state preset is the graph's images:=false.
  This process counts ticks on each cell's /clock (one best-effort reader; its CPU is reported as
  bench_cpu_ms_per_tick) and starts each cell's one episode on episode/command once that reader is
  matched. The window opens when every
  cell has ticked `warm` times and closes when the first cell is `tail` ticks from its episode's end,
  so all N cells run for the whole window. CPU: utime+stime from /proc/<pid>/stat of every graph
  process at both ends of the window, per node kind, per tick.
On 2 cores, N >= 2 saturates the machine on both sides, so the ratio is then the CPU efficiency of
the ROS path: raw cpu_ms_per_step / graph cpu_ms_per_tick bounds it.
Run: python bench/bench_fleet.py [--quick] [--cells 1,2,4] [--presets state,3x64]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / 'bench' / 'results' / 'fleet.json'
CAMS = ('basket_front_left', 'basket_front_right', 'basket_back_left')
TARGET_RATIO = 0.8           # issue 15.3: fleet steps/s >= 0.8 x raw-env processes, state preset
CLK_TCK = os.sysconf('SC_CLK_TCK')


@dataclass(frozen=True)
class Preset:
    name: str
    image_size: int
    cameras: Tuple[str, ...]       # () = no images (privileged state only)

    def env_config(self):
        from chef_sim.env import SimConfig
        return SimConfig(preset='fast', image_size=self.image_size, cameras=self.cameras or CAMS,
                         render_images=bool(self.cameras))


PRESETS = {'state': Preset('state', 64, ()), '3x64': Preset('3x64', 64, CAMS)}


# --- raw env processes ---------------------------------------------------------------------------
def _raw_worker(preset: Preset, seed: int, conn) -> None:
    """Build the env, then per request ('run', seconds): step env + scripted expert for that long and
    answer (steps, cpu_s). Idle (blocked on the pipe) between requests."""
    os.environ.setdefault('MUJOCO_GL', 'egl')
    from chef_sim.env import RgbStackingEnv
    from chef_sim.expert import ScriptedStacker
    env = RgbStackingEnv(preset.env_config())
    expert = ScriptedStacker()
    obs, _ = env.reset(seed=seed, triplet='rgb_test_triplet1')
    expert.reset()
    for _ in range(5):                                    # warm-up (renderer, caches)
        obs, *_ = env.step(expert.act(obs))
    conn.send('ready')
    episode = 0
    while True:
        msg = conn.recv()
        if msg == 'stop':
            break
        _, start_at, seconds = msg
        while time.time() < start_at:                   # released together
            time.sleep(0.0005)
        n, cpu0, t_end = 0, time.process_time(), start_at + seconds
        while time.time() < t_end:
            obs, _, _, done, _ = env.step(expert.act(obs))
            n += 1
            if done:
                episode += 1
                obs, _ = env.reset(seed=seed + 1000 * episode)
                expert.reset()
        conn.send((n, time.process_time() - cpu0))
    env.close()


class RawPool:
    """N raw-env worker processes, measured on demand (the same processes before and after a fleet)."""

    def __init__(self, preset: Preset, n: int):
        ctx = mp.get_context('spawn')
        self.conns, self.procs = [], []
        for i in range(n):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_raw_worker, args=(preset, 17 + i, child), daemon=True)
            p.start()
            self.conns.append(parent)
            self.procs.append(p)
        for c in self.conns:
            if not c.poll(180):
                raise RuntimeError('a raw env worker did not come up in 180 s')
            c.recv()

    def measure(self, seconds: float) -> dict:
        load = os.getloadavg()
        start_at = time.time() + 0.2
        for c in self.conns:
            c.send(('run', start_at, seconds))
        answers = [c.recv() for c in self.conns]
        steps, cpu = sum(a[0] for a in answers), sum(a[1] for a in answers)
        return {'steps_per_s': steps / seconds, 'steps': steps, 'seconds': seconds,
                'cpu_ms_per_step': 1e3 * cpu / max(1, steps), 'loadavg': list(load)}

    def close(self) -> None:
        for c in self.conns:
            try:
                c.send('stop')
            except (BrokenPipeError, OSError):
                pass
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()


# --- the fleet (sim graph) ----------------------------------------------------------------------
def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), s; 0 if it is gone."""
    try:
        fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def graph_specs(preset: Preset, n: int, episode_steps: int, data_dir: str, executor: str = ''):
    """The sim graph's processes for N cells, as `chef run sim` resolves them (`executor`: the graph's
    argument of that name; '' = its default)."""
    from chef_contract.graph import find_graph, load_graph
    args = {**({'executor': executor} if executor else {}),'cells': n, 'clock': 'lockstep', 'record': True, 'data_dir': data_dir, 'preset': 'fast',
            'image_size': preset.image_size, 'episode_steps': episode_steps, 'episodes': 0,
            'policy': 'scripted', 'triplet': 'rgb_test_triplet1', 'images': bool(preset.cameras)}
    return load_graph(find_graph('sim')).resolve(args)


def recorded_bags(data_dir: Path, n: int, timeout_s: float = 20.0) -> int:
    """Episodes the recorders published (one bag per cell expected once the episodes ended)."""
    from chef_recorder.layout import DataLayout
    layout = DataLayout(data_dir)
    end = time.monotonic() + timeout_s
    while True:
        bags = sum(1 for _ in layout.iter_bags())
        if bags >= n or time.monotonic() > end:
            return bags
        time.sleep(0.2)


class TickCounter:
    """Counts ticks per cell on /cellK/clock (the bridge's lockstep clock) from a background executor,
    and starts each cell's one episode (episode/command) once its /clock reader is matched, so no tick
    goes uncounted (an autostarted episode could end before a late-matched reader saw a tick)."""

    def __init__(self, domain: int, n: int):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rosgraph_msgs.msg import Clock

        from chef_contract import topics as T
        from chef_contract.ros import create_contract_publisher, create_contract_subscription, qos
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain,
                   signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        self.node = rclpy.create_node('bench_fleet', context=self.ctx, start_parameter_services=False,
                                      enable_rosout=False)
        self.ticks = [0] * n
        self.error = None
        profile = qos('clock', 'sub')
        profile.depth = 100            # a late spin must not drop ticks from the count
        self.subs = [self.node.create_subscription(Clock, f'/cell{k}/clock', self._cb(k), profile)
                     for k in range(n)]
        self.commands = [create_contract_publisher(self.node, T.EPISODE_COMMAND, remap=f'/cell{k}/{T.EPISODE_COMMAND}')
                         for k in range(n)]
        self.started = [False] * n
        self.recorder_ready = [False] * n
        for k in range(n):
            create_contract_subscription(self.node, T.RECORDER_STATUS, self._on_status(k),
                                         remap=f'/cell{k}/{T.RECORDER_STATUS}')
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def start_matched_cells(self) -> bool:
        """Once every cell's recorder is ready (recorder/status) and its bridge matched our /clock
        reader and command writer, send start to all cells at once, so they run side by side (a
        bridge defers a start until its own recorder is ready); True once sent."""
        from std_msgs.msg import String

        from chef_contract.events import EpisodeCommand
        if not all(self.started):
            if not (all(self.recorder_ready) and all(
                    sub.get_publisher_count() > 0 and pub.get_subscription_count() > 0
                    for sub, pub in zip(self.subs, self.commands))):
                return False
            for k, pub in enumerate(self.commands):
                pub.publish(String(data=EpisodeCommand(op='start', seed=k).to_json()))
                self.started[k] = True
        return True

    def _on_status(self, k):
        def cb(msg):
            from chef_contract.payloads import RecorderStatus
            self.recorder_ready[k] = RecorderStatus.from_json(msg.data).ready
        return cb

    def _cb(self, k):
        def cb(_msg):
            self.ticks[k] += 1
        return cb

    def _spin(self):
        while not self._stop.is_set():
            try:
                self.ex.spin_once(timeout_sec=0.05)
            except Exception as exc:  # noqa: BLE001 - shutting down, or a real error (reported)
                self.error = None if self._stop.is_set() else repr(exc)
                return

    def close(self):
        import rclpy
        self._stop.set()
        self.thread.join(timeout=5)
        self.ex.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


def fleet_rate(preset: Preset, n: int, episode_steps: int, executor: str = '', warm: int = 20, tail: int = 10,
               start_timeout_s: float = 240.0) -> dict:
    from chef_bringup.runner import die_with_parent, node_command
    from chef_contract.domains import release_domain_id, reserve_domain_id
    from chef_contract.testing import ros_env
    domain = reserve_domain_id()
    tmp = tempfile.mkdtemp(prefix='bench_fleet_')
    log = open(Path(tmp) / 'graph.log', 'w')
    procs: Dict[str, subprocess.Popen] = {}
    counter = None
    ok = False
    t_launch = time.monotonic()
    try:
        counter = TickCounter(domain, n)
        env = ros_env(domain)
        for s in graph_specs(preset, n, episode_steps, str(Path(tmp) / 'data'), executor):
            procs[s.fqn] = subprocess.Popen(node_command(s), env=dict(env, **s.env), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)

        def wait(cond, timeout, what):
            end = time.monotonic() + timeout
            while not cond():
                dead = {k: p.returncode for k, p in procs.items() if p.poll() is not None}
                if counter.error:
                    raise RuntimeError(f'fleet N={n} {preset.name}: the tick counter failed: {counter.error}')
                if dead or time.monotonic() > end:
                    raise RuntimeError(f'fleet N={n} {preset.name}: {what} '
                                       f'({"exited: " + str(dead) if dead else "timeout"}; log {log.name})')
                time.sleep(0.002)
        wait(counter.start_matched_cells, start_timeout_s, 'the cells did not come up')
        wait(lambda: min(counter.ticks) >= warm, start_timeout_s, 'cells did not start ticking')
        startup_s = time.monotonic() - t_launch

        def sample():
            return (time.perf_counter(), list(counter.ticks), {k: proc_cpu_s(p.pid) for k, p in procs.items()},
                    time.process_time(), os.getloadavg())
        t0, ticks0, cpu0, own0, load0 = sample()
        wait(lambda: max(counter.ticks) >= episode_steps + 1 - tail, 600, 'the episode did not run to its end')
        t1, ticks1, cpu1, own1, load1 = sample()
        try:       # each cell publishes tick 0 .. episode_steps once (+ re-sends, if any)
            wait(lambda: min(counter.ticks) >= episode_steps + 1, 60, 'not every cell finished its episode')
        except RuntimeError as exc:
            print(f'warning: {exc}', flush=True)
        counted = list(counter.ticks)
        bags = recorded_bags(Path(tmp) / 'data', n)
        ticks = sum(ticks1) - sum(ticks0)
        wall = t1 - t0
        if ticks <= 0:
            raise RuntimeError(f'fleet N={n} {preset.name}: no tick with all cells running '
                               f'(ticks {ticks0} -> {ticks1}); log {log.name}')
        ok = True
        by_node: Dict[str, float] = {}
        for k in procs:
            kind = k.rsplit('/', 1)[1]
            by_node[kind] = by_node.get(kind, 0.0) + cpu1[k] - cpu0[k]
        graph_cpu = sum(by_node.values())
        return {'steps_per_s': ticks / wall, 'ticks': ticks, 'seconds': round(wall, 3),
                'per_cell_steps_per_s': [round((b - a) / wall, 2) for a, b in zip(ticks0, ticks1)],
                'cpu_ms_per_tick': 1e3 * graph_cpu / ticks,
                'cpu_ms_per_tick_by_node': {k: round(1e3 * v / ticks, 3) for k, v in sorted(by_node.items())},
                'cpu_cores_busy': round(graph_cpu / wall, 3),
                'bench_cpu_ms_per_tick': round(1e3 * (own1 - own0) / ticks, 3),
                'clock_msgs_per_cell': counted, 'episodes_recorded': bags, 'startup_s': round(startup_s, 1), 'loadavg': list(load0), 'loadavg_end': list(load1)}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if counter is not None:
            counter.close()
        log.close()
        release_domain_id(domain)
        if ok:
            subprocess.call(['rm', '-rf', tmp])


def measure(preset: Preset, n: int, episode_steps: int, raw_s: float, executor: str = '') -> dict:
    pool = RawPool(preset, n)
    try:
        before = pool.measure(raw_s)
        fleet = fleet_rate(preset, n, episode_steps, executor)
        after = pool.measure(raw_s)
    finally:
        pool.close()
    raw = (before['steps_per_s'] + after['steps_per_s']) / 2
    raw_cpu = (before['cpu_ms_per_step'] + after['cpu_ms_per_step']) / 2
    return {'cells': n, 'preset': preset.name, 'fleet': fleet, 'raw_before': before, 'raw_after': after,
            'raw_steps_per_s': raw, 'ratio': fleet['steps_per_s'] / raw,
            'raw_cpu_ms_per_step': raw_cpu,
            # what the ratio would be on saturated cores: CPU per step of the raw env / of the graph
            'cpu_ratio': raw_cpu / fleet['cpu_ms_per_tick']}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='state preset, N = 1 and 2, short episodes (<= 90 s)')
    p.add_argument('--cells', default=None, help='comma-separated N values (default 1,2,4; quick 1,2)')
    p.add_argument('--presets', default=None, help=f'comma-separated presets {list(PRESETS)} '
                                                   '(default both; quick state)')
    p.add_argument('--episode-steps', type=int, default=None, help='ticks per fleet episode (default 400, quick 120)')
    p.add_argument('--raw-s', type=float, default=None, help='seconds per raw measurement (default 6, quick 3)')
    p.add_argument('--executor', default='', choices=('', 'events', 'single'),
                   help="the sim graph's executor argument (default: the graph's default)")
    p.add_argument('--out', type=Path, default=RESULTS, help='results JSON (default bench/results/fleet.json)')
    args = p.parse_args(argv)
    os.environ.setdefault('MUJOCO_GL', 'egl')
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')     # as the graph's nodes
    cells = [int(c) for c in (args.cells or ('1,2' if args.quick else '1,2,4')).split(',')]
    names = (args.presets or ('state' if args.quick else 'state,3x64')).split(',')
    unknown = [x for x in names if x not in PRESETS]
    if unknown or any(c < 1 for c in cells):
        raise SystemExit(f'bad --presets {unknown} (known {list(PRESETS)}) or --cells {cells} (>= 1)')
    episode_steps = args.episode_steps or (120 if args.quick else 400)
    raw_s = args.raw_s or (3.0 if args.quick else 6.0)
    t_start = time.monotonic()
    results: Dict[str, dict] = {}
    for name in names:
        for n in cells:
            key = f'{name}/N{n}'
            r = measure(PRESETS[name], n, episode_steps, raw_s, args.executor)
            results[key] = r
            f = r['fleet']
            nodes = ', '.join(f'{k} {v:.2f}' for k, v in f['cpu_ms_per_tick_by_node'].items())
            if f['episodes_recorded'] != n:
                print(f'warning: {key}: {f["episodes_recorded"]} of {n} episodes recorded', flush=True)
            print(f'{key:10s} fleet {f["steps_per_s"]:7.1f} steps/s vs raw {r["raw_steps_per_s"]:7.1f} '
                  f'({r["raw_before"]["steps_per_s"]:.1f} / {r["raw_after"]["steps_per_s"]:.1f}) = {r["ratio"]:.2f}x; '
                  f'CPU per step: graph {f["cpu_ms_per_tick"]:.2f} ms ({nodes}) vs raw '
                  f'{r["raw_cpu_ms_per_step"]:.2f} ms = {r["cpu_ratio"]:.2f}x; load {f["loadavg"][0]:.2f}',
                  flush=True)
    ratios = {k: round(r['ratio'], 3) for k, r in results.items()}
    targets = {k: {'value': v, 'target': TARGET_RATIO, 'met': v >= TARGET_RATIO}
               for k, v in ratios.items() if k.startswith('state/')}
    for k, t in targets.items():
        print(f'target {k}: {t["value"]:.2f} (>= {TARGET_RATIO}) {"MET" if t["met"] else "NOT MET"}')
    from chef_contract.graph import find_graph, load_graph
    executor = args.executor or load_graph(find_graph('sim')).arguments['executor'].default
    out = {'bench': 'fleet', 'quick': args.quick, 'episode_steps': episode_steps, 'raw_s': raw_s,
           'executor': executor,
           'ratios': ratios, 'targets': targets, 'results': results,
           'included': 'per cell: sim_bridge (lockstep, fast physics), policy_node (scripted expert), '
                       'safety_filter, recorder (MCAP bags + catalog); one process per node',
           'policy_batching': 'not applicable: the sim graph runs one policy process per cell',
           'machine': {'cpus': os.cpu_count(), 'platform': platform.platform(), 'loadavg': os.getloadavg()},
           'wall_s': round(time.monotonic() - t_start, 1), 'time': time.strftime('%Y-%m-%dT%H:%M:%S')}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix('.json.tmp')
    tmp.write_text(json.dumps(out, indent=2) + '\n')
    os.replace(tmp, args.out)
    print(f'wrote {args.out} ({out["wall_s"]} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
