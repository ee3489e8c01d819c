"""Observation -> command latency of the policy at 20 Hz with 2 x 128x128 images on CPU (p50/p99): in-process pipeline and end-to-end over DDS through policy_node and safety_filter; ratio to a bare actor forward pass.

Pipeline (in-process): per-tick contract messages (chef_contract.frames.frame_to_messages: 2 front
cameras 128x128 rgb8 + the real-robot state topics) -> messages_to_frame -> FrameStacker ->
obs_to_tensors -> MultiTaskActor (default pixel NetworkConfig: Nature-CNN-like strided encoder) ->
sampled action -> TwistStamped + gripper command: exactly what policy_node does per tick.
End-to-end (DDS): this process publishes the tick's messages at 20 Hz; policy_node (event-driven
`timing: lockstep`, a random-weight checkpoint) and safety_filter run as separate processes; the
latency is from publishing the tick's last message to receiving the safe twist stamped with it on
servo_node/delta_twist_cmds. Baseline: the actor's forward pass alone on ready tensors.
Run: python bench/bench_policy_latency.py [--quick] [--threads N] [--no-dds]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for pkg in ('chef_contract', 'chef_policy'):
    sys.path.insert(0, str(ROOT / 'src' / pkg))

from chef_contract import topics as T  # noqa: E402
from chef_contract.action import to_command  # noqa: E402
from chef_contract.spec import CONTROL_PERIOD_S, POLICY_CAMERAS, STATE_OBSERVATIONS, image_key  # noqa: E402
from chef_policy.checkpoint import save_checkpoint  # noqa: E402
from chef_policy.networks import MultiTaskActor, NetworkConfig, dummy_observation  # noqa: E402
from chef_policy.runner import NetworkPolicy, PolicyRunner  # noqa: E402

RESULTS = ROOT / 'bench' / 'results' / 'policy_latency.json'
TARGET_P99_MS = 10.0


def make_frame(rng, size=128):
    frame = {k.name: rng.normal(size=k.raw_shape).astype(np.float32) for k in STATE_OBSERVATIONS
             if k.real}
    frame['sawyer/pinch/pose'] = np.array([0.6, 0.0, 0.17, 0.0, 1.0, 0.0, 0.0], np.float32)
    for cam in POLICY_CAMERAS:
        frame[image_key(cam)] = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return frame


def stats(ms):
    a = np.asarray(ms, np.float64)
    return {'n': int(a.size), 'p50_ms': round(float(np.percentile(a, 50)), 3),
            'p90_ms': round(float(np.percentile(a, 90)), 3), 'p99_ms': round(float(np.percentile(a, 99)), 3),
            'max_ms': round(float(a.max()), 3), 'mean_ms': round(float(a.mean()), 3)}


def paced(ticks, fn):
    """Call fn(k) at 20 Hz for `ticks` ticks; return its latencies (ms)."""
    out = []
    t_next = time.perf_counter()
    for k in range(ticks):
        t_next += CONTROL_PERIOD_S
        out.append(fn(k))
        time.sleep(max(0.0, t_next - time.perf_counter()))
    return out


def bench_in_process(actor, cfg, ticks, rng):
    """Per tick, interleaved (same load for both): the bare forward pass, then the whole pipeline."""
    from geometry_msgs.msg import TwistStamped
    from std_msgs.msg import Float64MultiArray

    from chef_contract.frames import frame_to_messages, messages_to_frame
    from chef_contract.ros import ns_to_stamp
    runner = PolicyRunner(NetworkPolicy(actor, cfg, 'bench'))
    runner.start_episode(0)
    frames = [make_frame(rng) for _ in range(8)]
    msgs = [frame_to_messages(f, (k + 1) * 50_000_000, cameras=POLICY_CAMERAS) for k, f in enumerate(frames)]
    dummy = dummy_observation(cfg)
    forward_ms, pipeline_ms, commands = [], [], []

    def one(k):
        t0 = time.perf_counter()
        with torch.inference_mode():
            actor(dummy)
        forward_ms.append((time.perf_counter() - t0) * 1e3)
        m = msgs[k % len(msgs)]
        t0 = time.perf_counter()
        frame = messages_to_frame(m, cameras=POLICY_CAMERAS)
        step = runner.act(frame)
        linear, yaw, gripper = to_command(step.action)
        commands.append(Float64MultiArray(data=[gripper]))
        tw = TwistStamped()
        tw.header.stamp = ns_to_stamp((k + 1) * 50_000_000)
        tw.twist.linear.x, tw.twist.linear.y, tw.twist.linear.z = linear
        tw.twist.angular.z = yaw
        commands.append(tw)
        pipeline_ms.append((time.perf_counter() - t0) * 1e3)
        return 0.0
    paced(ticks, one)
    return forward_ms, pipeline_ms


def bench_dds(ckpt, ticks, threads, rng, log_path):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from chef_contract.frames import frame_to_messages
    from chef_contract.ros import create_contract_publisher, msg_class, qos, stamp_to_ns
    from chef_contract.testing import executable, ros_env, unique_domain_id
    domain = unique_domain_id()
    env = ros_env(domain)
    log = open(log_path, 'w')
    ns = ['-r', '__ns:=/cell0']
    procs = [
        subprocess.Popen([executable('chef_policy', 'policy_node'), '--ros-args', '-r', '__node:=policy'] + ns
                         + ['-p', f'policy:={ckpt}', '-p', 'timing:=lockstep', '-p', f'torch_threads:={threads}',
                            '-p', 'follow_trainer:=false'], env=env, stdout=log, stderr=subprocess.STDOUT),
        subprocess.Popen([executable('chef_policy', 'safety_filter'), '--ros-args', '-r', '__node:=safety_filter']
                         + ns + ['-p', 'timing:=realtime'], env=env, stdout=log, stderr=subprocess.STDOUT),
    ]
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node('bench', namespace='/cell0', context=ctx)
    received = {}
    received_policy = {}       # the policy's own command, before the safety filter's hop
    node_ms = []
    lock = threading.Lock()

    def on_step(msg):
        d = json.loads(msg.data)
        if d.get('latency_ms') is not None:
            with lock:
                node_ms.append(d['latency_ms'])

    def on_twist(msg):
        t = time.perf_counter()
        with lock:
            received.setdefault(stamp_to_ns(msg.header.stamp), t)
    def on_policy_twist(msg):
        t = time.perf_counter()
        with lock:
            received_policy.setdefault(stamp_to_ns(msg.header.stamp), t)
    prof = qos('command', 'sub')
    prof.depth = 100
    node.create_subscription(msg_class('geometry_msgs/msg/TwistStamped'), T.TWIST_CMD, on_twist, prof)
    node.create_subscription(msg_class('geometry_msgs/msg/TwistStamped'), T.POLICY_TWIST, on_policy_twist, prof)
    node.create_subscription(msg_class('std_msgs/msg/String'), T.POLICY_STEP, on_step, prof)
    frames = [make_frame(rng) for _ in range(8)]
    topics = list(frame_to_messages(frames[0], 1, cameras=POLICY_CAMERAS))
    pubs = {t: create_contract_publisher(node, t) for t in topics}
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    stop = threading.Event()
    th = threading.Thread(target=lambda: [ex.spin_once(timeout_sec=0.02) for _ in iter(stop.is_set, True)],
                          daemon=True)
    th.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
                all(p.get_subscription_count() > 0 for p in pubs.values())
                and node.count_publishers(T.TWIST_CMD) > 0):
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f'a node exited; see {log_path}')
            time.sleep(0.1)
        time.sleep(1.0)
        sent = {}

        def one(k):
            stamp = int(time.time() * 1e9)
            for t, m in frame_to_messages(frames[k % len(frames)], stamp, cameras=POLICY_CAMERAS).items():
                pubs[t].publish(m)
            sent[stamp] = time.perf_counter()
            return 0.0
        warm = 20
        paced(ticks + warm, one)
        time.sleep(0.5)
        with lock:
            lat = [(received[s] - t0) * 1e3 for s, t0 in sorted(sent.items())[warm:] if s in received]
            lat_policy = [(received_policy[s] - t0) * 1e3 for s, t0 in sorted(sent.items())[warm:]
                          if s in received_policy]
            inside = list(node_ms[warm:])
        missing = sum(1 for s in sorted(sent)[warm:] if s not in received)
        return lat, missing, inside, lat_policy
    finally:
        stop.set()
        th.join(timeout=2)
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
        log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='60 ticks instead of 400 (a smoke run)')
    ap.add_argument('--threads', type=int, default=1, help='torch intra-op threads (policy_node default 1)')
    ap.add_argument('--no-dds', action='store_true', help='skip the end-to-end DDS measurement')
    ap.add_argument('--out', type=Path, default=RESULTS, help='results JSON (default bench/results/policy_latency.json)')
    args = ap.parse_args()
    # the node processes run the executor the sim graph gives them (config/graphs/sim.yaml `executor`)
    from chef_contract.graph import find_graph, load_graph
    os.environ.setdefault('CHEF_RCLPY_EXECUTOR', load_graph(find_graph('sim')).arguments['executor'].default)
    ticks = 60 if args.quick else 400
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = NetworkConfig()                       # pixels, 2 front cameras, 128 px, the defaults
    actor = MultiTaskActor(cfg).eval()
    with torch.inference_mode():
        for _ in range(10):
            actor(dummy_observation(cfg))
    result = {'load_average_start': list(os.getloadavg()), 'config': cfg.to_dict(),
              'torch_threads': args.threads, 'ticks': ticks, 'rate_hz': 20,
              'torch': str(torch.__version__), 'machine': f'{platform.processor() or platform.machine()}, '
              f'{os.cpu_count()} cpus', 'target_p99_ms': TARGET_P99_MS,
              'actor_parameters': sum(p.numel() for p in actor.parameters())}
    print(f'policy latency: {ticks} ticks at 20 Hz, 2 x 128x128 images, torch threads {args.threads}')
    forward_ms, pipeline_ms = bench_in_process(actor, cfg, ticks, rng)
    fwd, pipe = stats(forward_ms), stats(pipeline_ms)
    result['baseline_forward'] = fwd
    print(f'  baseline actor forward      p50 {fwd["p50_ms"]:6.2f} ms  p99 {fwd["p99_ms"]:6.2f} ms')
    result['pipeline_in_process'] = pipe
    result['pipeline_vs_forward_p50'] = round(pipe['p50_ms'] / fwd['p50_ms'], 2)
    print(f'  pipeline (msgs -> command)  p50 {pipe["p50_ms"]:6.2f} ms  p99 {pipe["p99_ms"]:6.2f} ms  '
          f'({result["pipeline_vs_forward_p50"]}x forward)')
    if not args.no_dds:
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = Path(tmp) / 'bench_actor.pt'
            save_checkpoint(ckpt, {'actor': actor}, cfg)
            lat, missing, inside, lat_policy = bench_dds(ckpt, ticks, args.threads, rng, Path(tmp) / 'nodes.log')
        if not lat:
            raise SystemExit('no command came back over DDS (see the nodes log)')
        dds = stats(lat)
        dds['missing'] = missing
        result['end_to_end_dds'] = dds
        result['policy_node_internal'] = stats(inside) if inside else None
        result['policy_hop_dds'] = stats(lat_policy) if lat_policy else None
        result['dds_vs_forward_p50'] = round(dds['p50_ms'] / fwd['p50_ms'], 2)
        print(f'  end-to-end over DDS         p50 {dds["p50_ms"]:6.2f} ms  p99 {dds["p99_ms"]:6.2f} ms  '
              f'({result["dds_vs_forward_p50"]}x forward; {missing} ticks without a command)')
        if lat_policy:
            ph = result['policy_hop_dds']
            print(f'    policy_node alone (-> policy/twist_cmd) p50 {ph["p50_ms"]:6.2f} ms  p99 {ph["p99_ms"]:6.2f} ms '
                  '(one DDS hop each way, before the safety filter)')
        if inside:
            pn = result['policy_node_internal']
            print(f'    of which inside policy_node p50 {pn["p50_ms"]:6.2f} ms  p99 {pn["p99_ms"]:6.2f} ms '
                  '(complete set -> command published)')
    worst = result.get('end_to_end_dds', pipe)['p99_ms']
    result['meets_target'] = worst <= TARGET_P99_MS
    result['load_average_end'] = list(os.getloadavg())
    print(f'  load average (1, 5, 15 min) at start {result["load_average_start"]}, end '
          f'{result["load_average_end"]} on {os.cpu_count()} cpus (other jobs inflate every figure)')
    print(f'  target p99 <= {TARGET_P99_MS} ms: {"met" if result["meets_target"] else "NOT met"}')
    result['rclpy_executor'] = os.environ.get('CHEF_RCLPY_EXECUTOR') or 'single'   # of the node processes
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + '\n')
    print(f'  wrote {args.out}')


if __name__ == '__main__':
    main()
