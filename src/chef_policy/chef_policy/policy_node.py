"""`policy_node`: synchronised observation -> 5-D action -> policy/{gripper,twist}_cmd, every tick.

Observation: the per-tick contract topics (joint_states, wrist/wrench, gripper/grasp_status,
tcp/pinch_pose, tcp/wrist_pose, tcp/wrist_twist, joint_command/applied, plus the policy's camera
images, plus sim/object_poses for privileged policies) are paired by an ApproximateTimeSync, turned
into a frame by chef_contract.frames.messages_to_frame and stacked by chef_contract.obs.FrameStacker
(inside PolicyRunner), so the tensors equal the ones the trainer sees.

Timing (`timing` parameter; 'auto' = lockstep when use_sim_time is set):
* realtime: a 20 Hz timer acts on the newest complete set it has not acted on yet (slop
  `sync_slop_s`); a tick without a new set publishes nothing (the safety filter's watchdog stops
  the arm if that lasts 2 periods).
* tick: a wall-clock cell paced by its drivers: acts as soon as the complete set (slop
  `sync_slop_s`) for a new stamp has arrived, so every observation tick gets exactly one command
  and no own timer drifts against the drivers' (a 20 Hz timer misses a tick whenever two sets
  complete between two firings). The real cell's graph uses it.
* lockstep: acts as soon as the complete set for a new stamp t_k has arrived (slop 0: all stamps
  equal t_k); the sim waits for the command stamped t_k. If the sim re-sends tick k (its command
  did not arrive: a message lost while DDS endpoints were still matching), the command already
  computed for t_k is published again - never a second action for one tick.

Each tick publishes, in this order: policy/gripper_cmd, policy/twist_cmd (header.stamp = the
observation stamp t_k, frame base_link) and policy/step_info JSON (stamp_ns, tick, intention,
normalised action, inference_ms, ...). policy/info (latched JSON) describes the acting policy.
Until a policy is loaded and warmed up (or while a swap waits for newly needed topics), ticks get a
zero twist and no gripper command, so a lockstep sim keeps stepping and nothing moves.

Episodes: a start event (episode/events) resets the frame stacks and draws the intention schedule
(SAC-X: a new intention every `switch_every_steps`, or what the event's tags say); between an end
or abort and the next start nothing is acted on.

Hot reload: a new checkpoint announced on trainer/checkpoint ({path, sha256}, when
`follow_trainer`) or set through the `policy` parameter is loaded and warmed up in a background
thread; the acting thread swaps it in between two ticks, so no tick is missed.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
from geometry_msgs.msg import TwistStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import String

from chef_contract import topics as T
from chef_contract.action import InvalidAction, to_command
from chef_contract.config import field_
from chef_contract.events import EpisodeEvent, EventFormatError
from chef_contract.frames import FrameError, messages_to_frame
from chef_contract.params import declare_params
from chef_contract.payloads import CheckpointAnnouncement, PolicyInfo, StepInfo
from chef_contract.ros import (
    gripper_command_msg,
    create_contract_publisher, create_contract_subscription, ns_to_stamp, spin_node, stamp_to_ns,
)
from chef_contract.spec import CONTROL_PERIOD_S, INTENTIONS
from chef_policy.runner import PolicyError, PolicyRunner, make_policy
from chef_policy.schedule import IntentionSchedule, ScheduleError
from chef_policy.sync import ApproximateTimeSync

BASE_TOPICS = T.STATE_TOPICS          # what every policy needs; images and object poses on top


@dataclass
class Params:
    policy: str = field_('scripted', help="'scripted' (sim expert), a checkpoint path, or '' to wait "
                                          'for trainer/checkpoint')
    checkpoint_sha256: str = field_('', help='expected sha256 of `policy` (empty: not checked)')
    noise_std: float = field_(0.0, min=0.0, max=1.0, help='scripted expert action noise (normalised)')
    deterministic: bool = field_(False, help='network policies: mean action, most likely gripper')
    seed: int = field_(0, min=0, help='base seed, combined with each episode seed')
    timing: str = field_('auto', choices=('auto', 'realtime', 'tick', 'lockstep'),
                         help='auto: lockstep with use_sim_time, else realtime 20 Hz timer; tick: act on '
                              'every new complete observation set (wall-clock cells paced by their drivers)')
    sync_slop_s: float = field_(0.02, min=0.0, max=0.025,
                                help='realtime, tick: max stamp spread of one observation set (< period/2)')
    queue_size: int = field_(10, min=1, max=100, help='messages kept per topic for syncing')
    intentions: Tuple[str, ...] = field_(INTENTIONS, help='intentions the SAC-X schedule draws from')
    intention: str = field_('', help="fixed intention for every episode ('' = scheduled)")
    switch_every_steps: int = field_(100, min=1, help='SAC-X schedule: steps per intention')
    warmup_iterations: int = field_(5, min=1, max=1000, help='forward passes before motion is enabled')
    follow_trainer: bool = field_(True, help='hot-reload checkpoints announced on trainer/checkpoint')
    torch_threads: int = field_(1, min=1, max=64, help='torch intra-op threads for inference')
    act_without_episode: bool = field_(True, help='act before the first episode event is seen')
    input_grace_s: float = field_(0.25, min=0.0, max=5.0,
                                  help='wall time a tick may wait for its remaining topics (images, '
                                       'object poses) before it gets a zero command instead')


class PolicyNode(Node):
    def __init__(self, **kwargs):
        super().__init__('policy', **kwargs)
        self.p = declare_params(self, Params, on_change=self._on_params)
        torch.set_num_threads(self.p.torch_threads)
        timing = self.p.timing
        if timing == 'auto':
            timing = 'lockstep' if self.get_parameter('use_sim_time').value else 'realtime'
        elif timing == 'lockstep' and not self.get_parameter('use_sim_time').value:
            self.set_parameters([Parameter('use_sim_time', Parameter.Type.BOOL, True)])
        self.lockstep = timing == 'lockstep'
        self.timing = timing
        self.on_arrival = timing in ('lockstep', 'tick')     # act when a set completes, not on a timer
        self._lock = threading.Lock()
        self._pending = None                      # policy loaded in the background, not yet acting
        self._requested: Optional[Tuple[str, str]] = None
        self._loader: Optional[threading.Thread] = None
        self._load_error = ''
        self._spec = (self.p.policy, self.p.checkpoint_sha256,
                      self.p.noise_std if self.p.policy == 'scripted' else None)
        self._last_stamp: Optional[int] = None
        self._last_frame = None                   # (stamp, frame) of the last tick acted on
        self._episode_active = False
        self._episodes_seen = False
        self._inputs_ready = False                # PolicyInfo.inputs_ready (published on change)
        self._episode_id = ''
        self._waiting_stamp: Optional[int] = None  # base set complete, full set not (yet)
        self._waiting_since = 0.0
        self.ticks = 0                            # actions published since start
        self.counters = {'acted': 0, 'zero_not_ready': 0, 'zero_inputs_missing': 0,
                         'bad_observation': 0, 'bad_action': 0, 'swaps': 0, 'load_errors': 0,
                         'resent': 0}
        self._last_out: Optional[tuple] = None    # (stamp, gripper msg or None, twist msg) last published

        schedule = IntentionSchedule(self.p.intentions, self.p.switch_every_steps,
                                     self.p.intention or None)
        policy = self._load(self.p.policy, self.p.checkpoint_sha256, fatal=True)
        self.runner = PolicyRunner(policy, schedule, self.p.deterministic, self.p.seed)

        self.pub_gripper = create_contract_publisher(self, T.POLICY_GRIPPER)
        self.pub_twist = create_contract_publisher(self, T.POLICY_TWIST)
        self.pub_step = create_contract_publisher(self, T.POLICY_STEP)
        self.pub_info = create_contract_publisher(self, T.POLICY_INFO)
        self._subs: Dict[str, object] = {}
        self._base_sync = self._make_sync(BASE_TOPICS)
        self._sync = self._base_sync
        self._next_sync: Optional[ApproximateTimeSync] = None   # inputs of a policy about to swap in
        self._configure_inputs(policy)
        create_contract_subscription(self, T.EPISODE_EVENTS, self._on_event)
        create_contract_subscription(self, T.CHECKPOINT_ANNOUNCE, self._on_checkpoint)
        if not self.on_arrival:
            self.create_timer(CONTROL_PERIOD_S, self._try_act)
        else:        # wall-clock check of the input grace (sim time stands still while we wait)
            self.create_timer(CONTROL_PERIOD_S, self._try_act,
                              clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._publish_info()
        self.get_logger().info(
            f'policy {self._policy_id()} ready ({timing}); inputs: {", ".join(self._sync.topics)}')

    # --- policies --------------------------------------------------------------------------------
    def _load(self, spec: str, sha: str, fatal: bool = False):
        try:
            policy = make_policy(spec, self.p.noise_std, self.p.seed, sha or None)
            if policy is not None:
                policy.warmup(self.p.warmup_iterations)        # motion only after warm-up
            self._load_error = ''
            return policy
        except Exception as exc:  # noqa: BLE001 - a bad checkpoint must not kill a running cell
            self._load_error = f'{type(exc).__name__}: {exc}'
            self.counters['load_errors'] += 1
            if fatal:
                raise
            self.get_logger().error(f'could not load policy {spec!r}: {self._load_error}')
            return None

    def request_reload(self, spec: str, sha: str = '') -> None:
        """Load `spec` in a background thread; it replaces the acting policy between two ticks."""
        with self._lock:
            self._requested = (spec, sha)
            if self._loader is None:
                self._loader = threading.Thread(target=self._load_loop, name='policy-loader', daemon=True)
                self._loader.start()

    def _load_loop(self) -> None:
        while True:
            with self._lock:
                req, self._requested = self._requested, None
                if req is None:
                    self._loader = None
                    return
            policy = self._load(*req)
            if policy is not None:
                with self._lock:
                    self._pending = policy
                self.get_logger().info(f'loaded {policy.policy_id}; swapping it in at the next tick')
            else:
                self._publish_info()

    def _maybe_swap(self) -> None:
        """Swap a loaded policy in between two ticks. If it reads other topics (cameras, object
        poses), subscribe first and keep the old policy acting until the new set is complete."""
        with self._lock:
            policy = self._pending
        if policy is None:
            return
        topics = self._topics_for(policy)
        if topics != self._sync.topics:
            if self._next_sync is None or self._next_sync.topics != topics:
                self._subscribe(topics)
                self._next_sync = self._base_sync if topics == BASE_TOPICS else self._make_sync(topics)
            # one complete set of the new inputs (any tick, also one the old policy acted on)
            # proves they flow; until then the old policy acts
            if self.runner.policy is not None and self._next_sync.latest() is None:
                self.get_logger().info(f'{policy.policy_id} waits for its inputs {topics}',
                                       throttle_duration_sec=2.0)
                return                      # the old policy acts until the new inputs flow
            self._sync, self._next_sync = self._next_sync, None
        with self._lock:
            if self._pending is policy:
                self._pending = None
        self.runner.swap(policy)
        self.counters['swaps'] += 1
        self._publish_info()
        self.get_logger().info(f'now acting: {policy.policy_id}')

    def _policy_id(self) -> str:
        pol = self.runner.policy if hasattr(self, 'runner') else None
        return pol.policy_id if pol is not None else 'none'

    # --- inputs ----------------------------------------------------------------------------------
    def _make_sync(self, topics) -> ApproximateTimeSync:
        slop = 0 if self.lockstep else int(self.p.sync_slop_s * 1e9)
        return ApproximateTimeSync(topics, slop, self.p.queue_size)

    @staticmethod
    def _topics_for(policy) -> Tuple[str, ...]:
        if policy is None:
            return BASE_TOPICS
        return T.observation_topics(policy.cameras, objects=policy.needs_objects)

    def _subscribe(self, topics) -> None:
        for name in topics:
            if name not in self._subs:
                self._subs[name] = create_contract_subscription(
                    self, name, lambda msg, _n=name: self._on_obs(_n, msg))

    def _configure_inputs(self, policy) -> None:
        topics = self._topics_for(policy)
        self._subscribe(topics)
        if topics != self._sync.topics:
            self._sync = self._base_sync if topics == BASE_TOPICS else self._make_sync(topics)

    def _on_obs(self, name: str, msg) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        if (self.lockstep and name == T.JOINT_STATES and self._last_out is not None
                and self._last_out[0] == stamp):
            self._resend()          # the sim re-sent a tick we answered: our command got lost
            return
        for sync in {id(s): s for s in (self._base_sync, self._sync, self._next_sync)
                     if s is not None}.values():
            if name in sync.topics:
                sync.add(name, stamp, msg)
        if self.on_arrival:
            self._try_act()

    # --- events ----------------------------------------------------------------------------------
    def _on_event(self, msg: String) -> None:
        try:
            ev = EpisodeEvent.from_json(msg.data)
        except EventFormatError as exc:
            self.get_logger().error(f'bad episode event: {exc}')
            return
        self._episodes_seen = True
        if ev.event == 'start':
            try:
                self.runner.start_episode(ev.seed, ev.tags)
            except ScheduleError as exc:
                self.get_logger().error(f'episode {ev.episode_id}: bad intention tags ({exc}); '
                                        'using the configured schedule')
                self.runner.start_episode(ev.seed, {})
            self._episode_active = True
            self._episode_id = ev.episode_id
            if self._last_stamp is not None and self._last_stamp >= ev.stamp_ns:
                if self._last_frame is not None and self._last_frame[0] == ev.stamp_ns:
                    self.runner.count_acted(self._last_frame[1])   # tick 0 was acted on already
                else:
                    self.get_logger().warning(
                        f'start event of {ev.episode_id} arrived after ticks of its episode were acted on')
            else:
                self._last_stamp = ev.stamp_ns - 1      # act from tick 0 (stamp_ns) on, never before
            if self.on_arrival:
                self._try_act()
        else:
            self._episode_active = False

    def _on_checkpoint(self, msg: String) -> None:
        if not self.p.follow_trainer:
            return
        try:
            announced = CheckpointAnnouncement.from_json(msg.data)
        except EventFormatError as exc:
            self.get_logger().error(f'bad trainer/checkpoint announcement: {exc}')
            return
        path, sha = announced.path, announced.sha256
        current = self.runner.policy
        if current is not None and sha and sha == current.sha256:
            return
        self.get_logger().info(f'trainer announced {path} ({sha[:12]}); loading')
        self.request_reload(path, sha)

    def _on_params(self, p: Params) -> None:
        self.runner.deterministic = p.deterministic
        spec = (p.policy, p.checkpoint_sha256, p.noise_std if p.policy == 'scripted' else None)
        if spec != self._spec:
            self._spec = spec
            self.request_reload(p.policy, p.checkpoint_sha256)

    # --- acting ----------------------------------------------------------------------------------
    def _may_act(self) -> bool:
        if self._episode_active:
            return True
        return not self._episodes_seen and self.p.act_without_episode

    def _try_act(self) -> None:
        """Act on the newest complete set not acted on yet; zero command if none can come."""
        self._maybe_swap()
        if not self._inputs_ready:
            self._check_inputs_ready()
        if not self._may_act():
            return
        res = self._sync.latest(self._last_stamp)
        if res is not None:
            self._waiting_stamp = None
            self._act(*res)
            return
        base = self._base_sync.latest(self._last_stamp)
        if base is None:
            return
        if self.runner.policy is None:
            self._last_stamp = base[0]
            self._publish_zero(base[0], 'not_ready')
            return
        now = time.monotonic()
        if self._waiting_stamp != base[0]:           # images / object poses may still be in flight
            self._waiting_stamp, self._waiting_since = base[0], now
        elif now - self._waiting_since > self.p.input_grace_s:
            self._waiting_stamp = None
            self._last_stamp = base[0]
            self.get_logger().warning(
                f'no complete observation for {base[0]} after {self.p.input_grace_s} s '
                f'(waiting for {self._sync.topics}); zero command', throttle_duration_sec=1.0)
            self._publish_zero(base[0], 'inputs_missing')

    def _act(self, stamp: int, msgs) -> None:
        t0 = time.perf_counter()
        self._last_stamp = stamp
        policy = self.runner.policy
        if policy is None:
            self._publish_zero(stamp, 'not_ready')
            return
        try:
            frame = messages_to_frame(msgs, cameras=policy.cameras, require_objects=policy.needs_objects)
        except (FrameError, ValueError) as exc:
            self.counters['bad_observation'] += 1
            self.get_logger().error(f'observation at {stamp} unusable: {exc}',
                                    throttle_duration_sec=1.0)
            self._publish_zero(stamp, 'bad_observation')
            return
        self._last_frame = (stamp, frame)
        try:
            result = self.runner.act(frame)
            linear, yaw, gripper = to_command(result.action)
        except (PolicyError, InvalidAction, ValueError) as exc:
            self.counters['bad_action'] += 1
            self.get_logger().error(f'policy failed at {stamp}: {exc}', throttle_duration_sec=1.0)
            self._publish_zero(stamp, 'bad_action')
            return
        grip_msg, twist_msg = gripper_command_msg(gripper, stamp), self._twist(stamp, linear, yaw)
        self.pub_gripper.publish(grip_msg)         # gripper first, tagged with the tick
        self.pub_twist.publish(twist_msg)
        self._last_out = (stamp, grip_msg, twist_msg)
        self.ticks += 1
        self.counters['acted'] += 1
        self.pub_step.publish(String(data=StepInfo.acted_on(
            stamp, result.tick, result.intention, result.action, result.inference_ms,
            (time.perf_counter() - t0) * 1e3, self._episode_id, policy.policy_id, policy.sha256).to_json()))

    def _twist(self, stamp: int, linear, yaw: float) -> TwistStamped:
        msg = TwistStamped()
        msg.header.stamp = ns_to_stamp(stamp)
        msg.header.frame_id = T.WORLD_FRAME
        msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (float(v) for v in linear)
        msg.twist.angular.z = float(yaw)
        return msg

    def _publish_zero(self, stamp: int, reason: str) -> None:
        key = f'zero_{reason}'
        self.counters[key] = self.counters.get(key, 0) + 1
        twist_msg = self._twist(stamp, (0.0, 0.0, 0.0), 0.0)
        self.pub_twist.publish(twist_msg)
        self._last_out = (stamp, None, twist_msg)
        self.pub_step.publish(String(data=StepInfo.zero(stamp, reason, self._episode_id,
                                                         self._policy_id()).to_json()))

    def _resend(self) -> None:
        """Lockstep: publish the command of the tick the sim re-sent once more (same messages, same
        stamp; the bridge applies a tick's command once, so a copy that did arrive is ignored)."""
        _, grip_msg, twist_msg = self._last_out
        if grip_msg is not None:
            self.pub_gripper.publish(grip_msg)
        self.pub_twist.publish(twist_msg)
        self.counters['resent'] += 1
        self.get_logger().info('tick re-sent by the sim: command published again', throttle_duration_sec=1.0)

    def _check_inputs_ready(self) -> None:
        """Once a policy is loaded, a complete set of its inputs has arrived and its episode/events
        subscription has found a publisher, it can act on an episode's first tick: say so on
        policy/info (inputs_ready), which an episode manager may wait for before a start."""
        if (self.runner.policy is not None and self._sync.latest() is not None
                and self.count_publishers(T.EPISODE_EVENTS) > 0):
            self._inputs_ready = True
            self._publish_info()

    def _publish_info(self) -> None:
        pol = self.runner.policy if hasattr(self, 'runner') else None
        info = PolicyInfo(**(pol.info() if pol is not None else {'policy_id': 'none'}),
                          deterministic=bool(self.p.deterministic),
                          timing=self.timing, load_error=self._load_error,
                          swaps=int(self.counters['swaps']), inputs_ready=bool(getattr(self, '_inputs_ready', False)),
                          published_unix=time.time())
        if hasattr(self, 'pub_info'):
            self.pub_info.publish(String(data=info.to_json()))


NODE_PARAMS = {'policy_node': Params}


def main(args=None):
    sys.exit(spin_node(PolicyNode, args=args))
