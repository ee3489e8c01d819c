"""A synthetic cell for tests and benchmarks: real messages over real DDS, content known in advance.

`expected_frame(e, k)`, `expected_action(e, k)` and `expected_rewards(e, k)` are deterministic in
(episode index, tick), so a test can compare what the reader returns with what was published.
`CellPublisher` publishes one cell's traffic through the contract publishers, playing the cell
(episode events, per-tick observations via chef_contract.frames.frame_to_messages, reward terms),
the policy (policy/twist_cmd, policy/gripper_cmd, policy/step_info, policy/info) and the safety filter
(servo_node/delta_twist_cmds, gripper_controller/commands). `synthetic_cell` (executable) drives it
with a timer; tests call its methods directly to script reset storms.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from chef_contract import topics as T
from chef_contract.action import to_command
from chef_contract.config import field_
from chef_contract.events import EpisodeEvent
from chef_contract.payloads import PolicyInfo, StepInfo
from chef_contract.spec import (
    CAMERA_NAMES, CONTROL_PERIOD_S, INTENTIONS, REWARD_TERMS, STATE_OBSERVATIONS, image_key,
)

NS = 1_000_000_000
PERIOD_NS = int(CONTROL_PERIOD_S * NS)


def _rng(e: int, k: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([int(e), int(k), int(salt)])


def expected_frame(e: int, k: int, cameras: Sequence[str] = (), image_px: int = 16) -> Dict[str, np.ndarray]:
    """Observation of episode e, tick k (benchmark keys; object poses included)."""
    rng = _rng(e, k, 1)
    f = {key.name: rng.uniform(-1, 1, key.raw_shape).astype(np.float32) for key in STATE_OBSERVATIONS}
    f['sawyer/joints/angle'][0] = k           # readable markers of the tick and the episode
    f['sawyer/joints/angle'][1] = e
    for key in ('sawyer/pinch/pose', 'sawyer/tcp/pose', 'rgb30_red/abs_pose', 'rgb30_green/abs_pose',
                'rgb30_blue/abs_pose'):
        q = np.abs(f[key][3:]) + 0.1
        f[key][3:] = q / np.linalg.norm(q)
    for c in ('red', 'green', 'blue'):
        f[f'rgb30_{c}/to_pinch'] = f[f'rgb30_{c}/abs_pose'] - f['sawyer/pinch/pose']
    f['gripper/grasp'] = np.array([float(1 + (k % 3))], np.float32)
    f['gripper/joints/angle'] = np.array([float((k * 7) % 255)], np.float32)
    # the gripper command applied during the previous transition (what a cell reports), consistent
    # with the synthetic policy's gripper of tick k-1; open before the first action
    f['action/environment'][7] = 255.0 if k > 0 and expected_action(e, k - 1)[4] > 0 else -255.0
    for i, cam in enumerate(cameras):
        img = np.empty((image_px, image_px, 3), np.uint8)
        img[..., 0] = k % 256
        img[..., 1] = e % 256
        img[..., 2] = i
        img[0, :, :] = _rng(e, k, 10 + i).integers(0, 256, (image_px, 3), dtype=np.uint8)
        f[image_key(cam)] = img
    return f


def expected_action(e: int, k: int) -> np.ndarray:
    """Agent action the synthetic policy takes at tick k (in [-1, 1]^5, gripper +-1)."""
    a = _rng(e, k, 2).uniform(-1, 1, 5).astype(np.float32)
    a[4] = 1.0 if (k // 3) % 2 else -1.0
    return a


def expected_rewards(e: int, k: int) -> np.ndarray:
    """reward/terms published with the observation of tick k (REWARD_TERMS order)."""
    return _rng(e, k, 3).uniform(0, 1, len(REWARD_TERMS)).astype(np.float32)


def expected_intention(k: int) -> str:
    return INTENTIONS[(k // 5) % len(INTENTIONS)]


class CellPublisher:
    """Publishes one synthetic cell's traffic through `node` (contract names and QoS)."""

    def __init__(self, node, cameras: Sequence[str] = CAMERA_NAMES, image_px: int = 16,
                 source: str = 'sim', triplet: str = 'rgb_test_triplet1', tags: Optional[dict] = None,
                 sink=None, cell: str = ''):
        """`sink(name, msg)`, if given, receives the messages instead of publishers (no node needed)."""
        from chef_contract.ros import create_contract_publisher
        self.node = node
        self.sink = sink
        self.cameras = tuple(cameras)
        self.image_px = image_px
        self.source = source
        self.triplet = triplet
        self.tags = dict(tags or {'stage': 'collect', 'iteration': 0, 'config_hash': 'c0ffee'})
        names = [t.name for t in T.TOPICS if t.recorded and not t.real_only
                 and not t.name.startswith('camera/')]
        names += [T.image_topic(c) for c in self.cameras] + [T.camera_info_topic(c) for c in self.cameras]
        self.pubs = {n: create_contract_publisher(node, n) for n in names} if sink is None else {}
        self.cell = cell or (node.get_namespace().strip('/') if node is not None else '') or 'cell0'
        self.published = 0
        self.bytes = 0

    def _pub(self, name: str, msg) -> None:
        if self.sink is not None:
            self.sink(name, msg)
        else:
            self.pubs[name].publish(msg)
        self.published += 1

    def event(self, kind: str, episode_id: str, e: int, stamp_ns: int, steps: int = 0,
              reason: str = '', success: Optional[bool] = None, returns=None) -> EpisodeEvent:
        from std_msgs.msg import String
        ev = EpisodeEvent(event=kind, episode_id=episode_id, cell=self.cell, source=self.source,
                          triplet=self.triplet, seed=e, stamp_ns=stamp_ns, steps=steps,
                          objects=['r3', 's0', 'b2'], success=success, returns=returns, reason=reason,
                          tags=self.tags)
        self._pub(T.EPISODE_EVENTS, String(data=ev.to_json()))
        return ev

    def policy_info(self, policy_id: str = 'synthetic', sha: str = '0' * 64) -> None:
        from std_msgs.msg import String
        self._pub(T.POLICY_INFO, String(data=PolicyInfo(policy_id=policy_id, checkpoint_sha256=sha).to_json()))

    def observation(self, e: int, k: int, stamp_ns: int) -> None:
        """The per-tick messages of tick k (observation + reward terms), all stamped stamp_ns."""
        from chef_contract.frames import frame_to_messages
        from chef_contract.ros import camera_info_msg, named_vector_msg
        frame = expected_frame(e, k, self.cameras, self.image_px)
        infos = {c: camera_info_msg(c, self.image_px) for c in self.cameras}
        msgs = frame_to_messages(frame, stamp_ns, cameras=self.cameras, camera_infos=infos)
        msgs[T.REWARD_TERMS] = named_vector_msg(REWARD_TERMS, expected_rewards(e, k).tolist(), stamp_ns,
                                                T.WORLD_FRAME)
        for name, m in msgs.items():
            self._pub(name, m)
            if name.startswith('camera/') and name.endswith('image_raw'):
                self.bytes += self.image_px * self.image_px * 3

    def command(self, e: int, k: int, stamp_ns: int, executed: bool = True) -> None:
        """The policy's command for tick k (stamped with the observation stamp) + the safety output."""
        from geometry_msgs.msg import TwistStamped
        from std_msgs.msg import Float64MultiArray, String

        from chef_contract.ros import ns_to_stamp
        a = expected_action(e, k)
        (vx, vy, vz), yaw, grip = to_command(a)
        tw = TwistStamped()
        tw.header.stamp, tw.header.frame_id = ns_to_stamp(stamp_ns), T.WORLD_FRAME
        tw.twist.linear.x, tw.twist.linear.y, tw.twist.linear.z = vx, vy, vz
        tw.twist.angular.z = yaw
        self._pub(T.POLICY_TWIST, tw)
        self._pub(T.POLICY_GRIPPER, Float64MultiArray(data=[grip]))
        intention = INTENTIONS.index(expected_intention(k))
        self._pub(T.POLICY_STEP, String(data=StepInfo(
            stamp_ns=int(stamp_ns), tick=k, intention=intention, intention_name=INTENTIONS[intention],
            action=a.tolist(), inference_ms=1.0).to_json()))
        if executed:
            self._pub(T.TWIST_CMD, tw)
            self._pub(T.GRIPPER_CMD, Float64MultiArray(data=[grip]))


# --------------------------------------------------------------------------------------------------
@dataclass
class Params:
    episodes: int = field_(3, help='episodes to publish (0 = forever)', min=0)
    steps: int = field_(20, help='transitions per episode', min=1)
    rate_hz: float = field_(20.0, help='ticks per second of wall time', min=0.1, max=10000.0)
    cameras: List[str] = field_(default_factory=lambda: list(CAMERA_NAMES), help="['none'] = no camera")
    image_px: int = field_(128, help='image height and width', min=1, max=2048)
    clock: str = field_('sim', help='stamps: sim (from stamp_base_s, exact periods) or wall (now)',
                        choices=('sim', 'wall'))
    stamp_base_s: float = field_(1000.0, help='sim clock at the first tick', min=0.0)
    start_delay_s: float = field_(1.0, help='wait before the first episode (discovery)', min=0.0)
    episode_offset: int = field_(0, help='index of the first episode (content and id)', min=0)
    id_prefix: str = field_('synth', help='episode ids are <prefix>-<cell>-<index>')
    report_file: str = field_('', help='JSON file with published counts, written at exit')


NODE_PARAMS = {'synthetic_cell': Params}


def _node_class():
    """The timer-driven `synthetic_cell` node class (built lazily: importing this module needs no rclpy)."""
    from rclpy.node import Node

    class _SyntheticCell(Node):
        def __init__(self, **kwargs):
            from chef_contract.params import declare_params
            super().__init__('synthetic_cell', **kwargs)
            self.p = declare_params(self, Params)
            cams = [] if list(self.p.cameras) == ['none'] else list(self.p.cameras)
            self.cell = CellPublisher(self, cams, self.p.image_px)
            self.cell.policy_info()
            self.e = self.p.episode_offset
            self.k = -1
            self.sim_ns = int(self.p.stamp_base_s * NS)
            self.t0 = time.monotonic() + self.p.start_delay_s
            self.missed_periods = 0                     # own tick intervals > 1.5 periods
            self.last_stamp = None
            self.done = False
            self.create_timer(1.0 / self.p.rate_hz, self._tick)

        def _stamp(self) -> int:
            if self.p.clock == 'wall':
                return time.time_ns()
            self.sim_ns += PERIOD_NS
            return self.sim_ns

        def _tick(self):
            if self.done or time.monotonic() < self.t0:
                return
            if self.p.episodes and self.e >= self.p.episode_offset + self.p.episodes:
                self.done = True
                self._report()
                import rclpy
                rclpy.try_shutdown(context=self.context)        # spin_node: clean exit 0
                return
            eid = f'{self.p.id_prefix}-{self.cell.cell}-{self.e:05d}'
            stamp = self._stamp()
            if self.k < 0:
                self.start_ns = stamp
                self.cell.event('start', eid, self.e, stamp)
                self.k = 0
            if self.k > 0 and self.last_stamp is not None and stamp - self.last_stamp > 1.5 * PERIOD_NS:
                self.missed_periods += 1
            self.last_stamp = stamp
            self.cell.observation(self.e, self.k, stamp)
            if self.k < self.p.steps:
                self.cell.command(self.e, self.k, stamp)
                self.k += 1
            else:
                self.cell.event('end', eid, self.e, stamp, steps=self.p.steps, success=bool(self.e % 2))
                self.e += 1
                self.k = -1

        def _report(self):
            if self.p.report_file:
                from pathlib import Path
                Path(self.p.report_file).write_text(json.dumps({
                    'published': self.cell.published, 'image_bytes': self.cell.bytes,
                    'missed_periods': self.missed_periods, 'policy_info': 1,
                    'episodes': self.e - self.p.episode_offset}))

        def close(self):
            self._report()

    return _SyntheticCell


def main(args=None):
    from chef_contract.ros import spin_node
    sys.exit(spin_node(_node_class(), args=args))
