"""Levers on the ROS path's cost (issue 15.4), one at a time, each measured in this run and written to
bench/results/experiments/ros_levers.json (docs/performance.md reads it):

  events_executor_hang  rclpy 9.1.2's EventsExecutor.spin() (no timeout) in a child process: CPU it
                        burns and whether shutdown() gets it back, against the bounded wrapper
                        (chef_contract.executors.BoundedEventsExecutor);
  lockstep              bench_sim's lockstep (sim_bridge process + in-process commander), fast state
                        and fast 3 x 64 px, with $CHEF_RCLPY_EXECUTOR single vs events, interleaved
                        with the raw env; the bridge's busy fraction is the load-robust figure;
  latency               bench_policy_latency's obs -> safe command over DDS (policy_node +
                        safety_filter processes), single vs events, interleaved;
  messages_per_tick     what one lockstep tick puts on DDS per node (from the contract), so the per-node
                        CPU of `chef bench fleet` can be read per message;
  message_cost          CPU per tick of moving a state tick as 9 JointState messages (the contract's
                        layout) vs one message with the same values: publisher + subscriber process;
  zenoh                 whether rmw_zenoh (or another rmw) installs from PyPI here (pip download).
Intra-process hand-off has no lever in rclpy (no intra-process comms; every publish serializes through
the rmw), see docs/performance.md.
Run: python bench/ros_levers.py [--reps 2] [--only lockstep,latency,...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / 'bench' / 'results' / 'experiments' / 'ros_levers.json'
KINDS = ('single', 'events')

HANG_CHILD = r'''
import sys, threading, time, json
import rclpy
from std_msgs.msg import String
bounded = sys.argv[1] == 'bounded'
rclpy.init()
node = rclpy.create_node('hang_probe', start_parameter_services=False, enable_rosout=False)
got = []
node.create_subscription(String, 'chatter', lambda m: got.append(1), 10)
pub = node.create_publisher(String, 'chatter', 10)
node.create_timer(0.05, lambda: pub.publish(String(data='x')))
if bounded:
    from chef_contract.executors import BoundedEventsExecutor
    ex = BoundedEventsExecutor()
else:
    from rclpy.experimental.events_executor import EventsExecutor
    ex = EventsExecutor()
ex.add_node(node)
out = {}
def spin():
    t0 = time.thread_time()
    try:
        ex.spin()
    except Exception as e:  # noqa: BLE001
        out['spin_error'] = repr(e)
    out['spin_thread_cpu_s'] = time.thread_time() - t0
th = threading.Thread(target=spin, daemon=True)
c0 = time.process_time()
th.start()
time.sleep(3.0)
out['received_in_3s'] = len(got)
out['process_cpu_s_in_3s'] = round(time.process_time() - c0, 3)
print('PROGRESS ' + json.dumps(out), flush=True)
out['shutdown_returned'] = bool(ex.shutdown(timeout_sec=3.0))
th.join(timeout=2.0)
out['spin_returned'] = not th.is_alive()
print('RESULT ' + json.dumps(out), flush=True)
import os
os._exit(0)
'''


def events_executor_hang() -> dict:
    sys.path.insert(0, str(ROOT / 'bench'))
    out = {}
    for mode in ('unbounded', 'bounded'):
        with tempfile.NamedTemporaryFile('w', suffix='.py', delete=False) as f:
            f.write(HANG_CHILD)
        from chef_contract.testing import ros_env, unique_domain_id
        try:
            proc = subprocess.Popen([sys.executable, f.name, mode], env=ros_env(unique_domain_id()),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                stdout, _ = proc.communicate(timeout=20)
                hung = False
            except subprocess.TimeoutExpired:      # the hang: CPU the child burnt in 20 s, then kill it
                from bench_fleet import proc_cpu_s
                cpu = proc_cpu_s(proc.pid)
                proc.kill()
                stdout, _ = proc.communicate()
                hung = True
            lines = {x.split(' ', 1)[0]: json.loads(x.split(' ', 1)[1]) for x in stdout.splitlines()
                     if x.startswith(('RESULT ', 'PROGRESS '))}
            out[mode] = lines.get('RESULT') or lines.get('PROGRESS') or {}
            if hung:
                out[mode].update(hung=True, process_cpu_s_in_20s_wall=round(cpu, 2),
                                 note='killed after 20 s: shutdown() never returned')
        finally:
            os.unlink(f.name)
        print(f'events_executor_hang {mode}: {out[mode]}', flush=True)
    return out


def lockstep(reps: int, steps: int) -> dict:
    sys.path.insert(0, str(ROOT / 'bench'))
    import bench_sim
    cams = bench_sim.CAMS
    rows = []
    for rep in range(reps):
        for name, size, cameras in (('fast/state', 128, ()), ('fast/3cam64', 64, cams)):
            for kind in KINDS:
                os.environ['CHEF_RCLPY_EXECUTOR'] = kind        # the bridge process and the commander
                raw = bench_sim.env_rate('fast', size, cameras, steps)
                r = bench_sim.lockstep_rate('fast', size, cameras, steps)
                r.update(config=name, executor=kind, rep=rep, raw_env_steps_per_s=raw['steps_per_s'],
                         ratio_to_raw_env=r['steps_per_s'] / raw['steps_per_s'], loadavg=list(os.getloadavg()))
                rows.append(r)
                print(f'lockstep {name:12s} {kind:6s} {r["steps_per_s"]:6.1f} steps/s, raw {raw["steps_per_s"]:6.1f} '
                      f'= {r["ratio_to_raw_env"]:.2f}x; bridge busy {r.get("bridge_busy_fraction", float("nan")):.2f} '
                      f'(step+publish {r.get("bridge_step_ms")} ms, command wait {r.get("command_wait_ms")} ms); '
                      f'load {r["loadavg"][0]:.1f}', flush=True)
    os.environ.pop('CHEF_RCLPY_EXECUTOR', None)
    summary = {}
    for name in ('fast/state', 'fast/3cam64'):
        for kind in KINDS:
            sel = [r for r in rows if r['config'] == name and r['executor'] == kind]
            summary[f'{name}/{kind}'] = {
                k: round(sum(r[k] for r in sel) / len(sel), 3)
                for k in ('ratio_to_raw_env', 'bridge_busy_fraction', 'command_wait_ms', 'bridge_step_ms')
                if all(k in r for r in sel)}
    return {'rows': rows, 'mean': summary}


def latency(reps: int, quick: bool) -> dict:
    rows = []
    for rep in range(reps):
        for kind in KINDS:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / 'lat.json'
                env = dict(os.environ, CHEF_RCLPY_EXECUTOR=kind)
                cmd = [sys.executable, str(ROOT / 'bench' / 'bench_policy_latency.py'), '--out', str(out)]
                subprocess.run(cmd + (['--quick'] if quick else []), env=env, cwd=ROOT, timeout=400,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                if not out.exists():
                    rows.append({'executor': kind, 'rep': rep, 'error': 'bench_policy_latency wrote nothing'})
                    continue
                r = json.loads(out.read_text())
            row = {'executor': kind, 'rep': rep, 'end_to_end_dds': r.get('end_to_end_dds'),
                   'policy_hop_dds': r.get('policy_hop_dds'), 'policy_node_internal': r.get('policy_node_internal'),
                   'baseline_forward': r.get('baseline_forward'),
                   'loadavg': [r.get('load_average_start'), r.get('load_average_end')]}
            rows.append(row)
            e = row['end_to_end_dds'] or {}
            print(f'latency {kind:6s} rep {rep}: end-to-end p50 {e.get("p50_ms")} ms p99 {e.get("p99_ms")} ms, '
                  f'missing {e.get("missing")}; load {row["loadavg"][0]}', flush=True)
    return {'rows': rows}


def messages_per_tick() -> dict:
    """DDS messages one lockstep tick of a state-only cell moves, per node (writes; reads)."""
    from chef_contract import topics as T
    from chef_policy.policy_node import BASE_TOPICS
    bridge_out = len(T.tick_topics(())) + 1                       # + /clock
    policy_in = len(BASE_TOPICS) + 1                             # + sim/object_poses (scripted expert)
    return {
        'sim_bridge': {'writes': bridge_out, 'reads': 2, 'topics': ['/clock', *T.tick_topics(())]},
        'policy': {'reads': policy_in, 'writes': 3, 'note': 'twist, gripper, step_info'},
        'safety_filter': {'reads': 'twist + gripper + the state topics it watches', 'writes': 3},
        'recorder': {'reads': 'every contract topic except /clock: the tick topics + policy and safe commands'},
        'per_3x64_tick_extra': 6,                                  # image + camera_info per camera
    }


MSG_SUB_CHILD = r'''
import sys, time, json
import rclpy
from sensor_msgs.msg import JointState
from chef_contract.executors import make_executor
topics, kind, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
rclpy.init()
node = rclpy.create_node('msg_cost_sub', start_parameter_services=False, enable_rosout=False)
n = [0]
for k in range(topics):
    node.create_subscription(JointState, f'tick/t{k}', lambda m: n.__setitem__(0, n[0] + 1), 100)
ex = make_executor(kind)
ex.add_node(node)
print('READY', flush=True)
end = time.monotonic() + seconds
c0 = None
while time.monotonic() < end:
    ex.spin_once(timeout_sec=0.05)
    if c0 is None and n[0]:
        c0, n0 = time.process_time(), n[0]
print('RESULT ' + json.dumps({'received': n[0] - (n0 if c0 else 0), 'cpu_s': time.process_time() - (c0 or 0)}), flush=True)
'''


def message_cost(ticks: int = 600, rate_hz: float = 200.0) -> dict:
    """CPU per tick to move one tick's state as 9 JointState messages (the contract's layout) vs one
    JointState carrying the same 60 values, publisher (this process) and subscriber (a child process,
    SingleThreadedExecutor and events), at `rate_hz` ticks/s."""
    import rclpy
    from sensor_msgs.msg import JointState

    from chef_contract.testing import ros_env, unique_domain_id
    out = {}
    for kind in KINDS:
        for topics, values in ((9, 7), (1, 63)):
            domain = unique_domain_id()
            with tempfile.NamedTemporaryFile('w', suffix='.py', delete=False) as f:
                f.write(MSG_SUB_CHILD)
            seconds = ticks / rate_hz + 4.0
            child = subprocess.Popen([sys.executable, f.name, str(topics), kind, str(seconds)], env=ros_env(domain),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            ctx = rclpy.Context()
            rclpy.init(context=ctx, domain_id=domain)
            node = rclpy.create_node('msg_cost_pub', context=ctx, start_parameter_services=False,
                                     enable_rosout=False)
            pubs = [node.create_publisher(JointState, f'tick/t{k}', 100) for k in range(topics)]
            t_end = time.monotonic() + 10
            while time.monotonic() < t_end and not all(p.get_subscription_count() for p in pubs):
                time.sleep(0.01)
            time.sleep(0.5)
            msg = JointState(name=[f'j{i}' for i in range(values)], position=[0.1] * values)
            c0 = time.thread_time()
            for _ in range(ticks):
                for pub in pubs:
                    msg.header.stamp = node.get_clock().now().to_msg()
                    pub.publish(msg)
                time.sleep(1.0 / rate_hz)
            pub_cpu = time.thread_time() - c0
            stdout, _ = child.communicate(timeout=seconds + 30)
            os.unlink(f.name)
            node.destroy_node()
            rclpy.try_shutdown(context=ctx)
            res = next((json.loads(x[7:]) for x in stdout.splitlines() if x.startswith('RESULT ')), {})
            key = f'{kind}/{topics}x{values}'
            out[key] = {'publisher_us_per_tick': round(1e6 * pub_cpu / ticks, 1),
                        'subscriber_us_per_tick': round(1e6 * res.get('cpu_s', float('nan')) / max(1, ticks), 1),
                        'received': res.get('received'), 'sent': ticks * topics, 'loadavg': list(os.getloadavg())}
            print(f'message_cost {key}: {out[key]}', flush=True)
    for kind in KINDS:          # co-located: the subscriber in the publisher's process (one context)
        out[f'{kind}/9x7/colocated'] = _colocated_cost(kind, ticks, rate_hz)
        print(f'message_cost {kind}/9x7/colocated: {out[f"{kind}/9x7/colocated"]}', flush=True)
    return out


def _colocated_cost(kind: str, ticks: int, rate_hz: float, topics: int = 9, values: int = 7) -> dict:
    import threading

    import rclpy
    from sensor_msgs.msg import JointState

    from chef_contract.executors import make_executor
    from chef_contract.testing import unique_domain_id
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=unique_domain_id())
    pub_node = rclpy.create_node('msg_cost_pub', context=ctx, start_parameter_services=False, enable_rosout=False)
    sub_node = rclpy.create_node('msg_cost_sub', context=ctx, start_parameter_services=False, enable_rosout=False)
    n = [0]
    for k in range(topics):
        sub_node.create_subscription(JointState, f'tick/t{k}', lambda m: n.__setitem__(0, n[0] + 1), 100)
    pubs = [pub_node.create_publisher(JointState, f'tick/t{k}', 100) for k in range(topics)]
    ex = make_executor(kind, context=ctx)
    ex.add_node(sub_node)
    stop = threading.Event()
    th = threading.Thread(target=lambda: [ex.spin_once(timeout_sec=0.05) for _ in iter(stop.is_set, True)],
                          daemon=True)
    th.start()
    t_end = time.monotonic() + 10
    while time.monotonic() < t_end and not all(p.get_subscription_count() for p in pubs):
        time.sleep(0.01)
    time.sleep(0.5)
    msg = JointState(name=[f'j{i}' for i in range(values)], position=[0.1] * values)
    n0, c0 = n[0], time.process_time()
    for _ in range(ticks):
        for pub in pubs:
            msg.header.stamp = pub_node.get_clock().now().to_msg()
            pub.publish(msg)
        time.sleep(1.0 / rate_hz)
    time.sleep(0.3)
    cpu = time.process_time() - c0
    stop.set()
    th.join(timeout=5)
    ex.shutdown()
    received = n[0] - n0
    pub_node.destroy_node()
    sub_node.destroy_node()
    rclpy.try_shutdown(context=ctx)
    return {'process_us_per_tick': round(1e6 * cpu / ticks, 1), 'received': received, 'sent': ticks * topics,
            'loadavg': list(os.getloadavg())}


def zenoh() -> dict:
    out = {}
    for pkg in ('ros-rmw-zenoh-cpp', 'ros-rmw-cyclonedds-cpp'):
        with tempfile.TemporaryDirectory() as tmp:
            p = subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps', '-q', '-d', tmp, pkg],
                               capture_output=True, text=True, timeout=120)
        out[pkg] = {'installable': p.returncode == 0,
                    'pip': (p.stdout + p.stderr).strip().splitlines()[-1:] if p.returncode else 'downloaded'}
        print(f'{pkg}: {out[pkg]}', flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--reps', type=int, default=2, help='interleaved repetitions of lockstep and latency')
    p.add_argument('--steps', type=int, default=300, help='lockstep steps per measurement')
    p.add_argument('--quick-latency', action='store_true', help='60-tick latency runs')
    p.add_argument('--only', default='events_executor_hang,lockstep,latency,messages_per_tick,message_cost,zenoh')
    p.add_argument('--out', type=Path, default=OUT)
    args = p.parse_args(argv)
    os.environ.setdefault('MUJOCO_GL', 'egl')
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    for name in args.only.split(','):
        t0 = time.monotonic()
        if name == 'events_executor_hang':
            result[name] = events_executor_hang()
        elif name == 'lockstep':
            result[name] = lockstep(args.reps, args.steps)
        elif name == 'latency':
            result[name] = latency(args.reps, args.quick_latency)
        elif name == 'messages_per_tick':
            result[name] = messages_per_tick()
        elif name == 'message_cost':
            result[name] = message_cost()
        elif name == 'zenoh':
            result[name] = zenoh()
        else:
            raise SystemExit(f'unknown experiment {name!r}')
        result.setdefault('_meta', {})[name] = {'time': time.strftime('%Y-%m-%dT%H:%M:%S'),
                                               'wall_s': round(time.monotonic() - t0, 1),
                                               'cpus': os.cpu_count(), 'loadavg_end': list(os.getloadavg())}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + '\n')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
