"""`sim_bridge` node: one simulated RGB-Stacking cell behind the same ROS contract as a real cell.

Per control tick k (stamp t_k) it publishes, via chef_contract.frames.frame_to_messages:
camera/<cam>/image_raw + camera_info, joint_states (arm + finger_joint), wrist/wrench,
gripper/grasp_status, tcp/pinch_pose, tcp/wrist_pose, tcp/wrist_twist, joint_command/applied,
sim/object_poses (sim-only ground truth) and reward/terms (named vector of the transition that led
to tick k; zeros at tick 0). It takes geometry_msgs/TwistStamped on servo_node/delta_twist_cmds
(the MoveIt Servo input of the real cell, base_link, m/s and rad/s) and the finger target as
std_msgs/Float64MultiArray on gripper_controller/commands (ros2_control forward command
controller). NaN/inf, out-of-range or wrong-frame commands are refused with a warning and never
reach the physics.

Clocks (`clock_mode`):
  lockstep  - publish /clock = t_k, then tick k's topics; wait for the TwistStamped with
              header.stamp == t_k (and the gripper command: the latest one; if none came since
              tick k was published, wait `gripper_wait_s` more - so commanders publish the gripper
              command first, then the twist); step; publish tick k+1. With no
              command within `lockstep_timeout_s` (wall) it applies zero velocity, warns, goes on;
              meanwhile it re-sends tick k every `resend_s` (a sample lost while DDS endpoints are
              still matching, typically at tick 0, then costs a pause instead of a zero tick).
              Sim time is monotonic across episodes and starts at `start_time_s`.
  realtime  - a 20 Hz wall-clock timer steps the cell with the latest command; a twist older than
              `watchdog_s` (100 ms) means zero velocity. Stamps are wall time, no /clock.
Episodes: EpisodeCommand JSON on episode/command (start: triplet, seed, tags; stop), the Trigger
services episode/start and episode/stop, or on its own: `episodes` > 0 runs that many,
`autostart` without limit. Events on
episode/events: start (before tick 0), end (after the last transition; success = sparse success at
the final step, returns = per-term sums), abort (stop, restart, shutdown).
With `wait_for_recorder` (sim graphs that record) no episode starts before the cell's recorder says
`ready` on recorder/status (matched to every topic it records, policy commands included): a start
command waits for it, the start service is refused, autostart holds back - for at most
`recorder_wait_s`, then it starts with an error in the log.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock as ClockMsg
from std_msgs.msg import String
from std_srvs.srv import Trigger

from chef_contract import topics as T
from chef_contract.config import field_
from chef_contract.events import EpisodeCommand, EventFormatError
from chef_contract.frames import frame_to_messages
from chef_contract.params import declare_params
from chef_contract.payloads import RecorderStatus
from chef_contract.ros import (
    camera_info_msg, create_contract_publisher, create_contract_subscription, gripper_tick_stamp, named_vector_msg,
    ns_to_stamp, spin_node, stamp_to_ns,
)
from chef_contract.spec import (
    ARM_COMMAND_TIMEOUT_S, CAMERA_NAMES, CONTROL_PERIOD_S, DEFAULT_IMAGE_SIZE_PX, EPISODE_STEPS,
    GRIPPER_OPEN_POSITION_RAD, REWARD_TERMS,
)
from chef_sim.env import PRESETS, RgbStackingEnv, SimConfig
from chef_sim.episodes import (
    EpisodeRunner, InvalidCommand, command_to_action, validate_gripper, validate_twist,
)
from chef_sim.randomization import DomainRandomizationConfig

TICK_NS = int(round(CONTROL_PERIOD_S * 1e9))
LOCKSTEP_POLL_S = 0.01       # s, wall clock


@dataclass
class Params:
    clock_mode: str = field_('lockstep', choices=('lockstep', 'realtime'),
                             help='lockstep: advance when the command for tick k arrives, publish /clock; '
                                  'realtime: 20 Hz wall-clock timer')
    triplet: str = field_('rgb_test_triplet1', help='default triplet / random set / ids "r3,s0,b2"')
    seed: int = field_(0, help='episode i of cell N uses seed + N * 1000003 + i unless a command names one')
    preset: str = field_('faithful', choices=PRESETS, help="physics preset ('fast': 2 ms, no noslip)")
    physics_timestep_s: float = field_(0.0, min=0.0, max=0.01, help='override the preset physics step (0 = preset)')
    image_size: int = field_(DEFAULT_IMAGE_SIZE_PX, min=16, max=1024, help='camera image height = width, px')
    cameras: Tuple[str, ...] = field_(CAMERA_NAMES, help='cameras to render and publish')
    render_images: bool = field_(True, help='render and publish camera images')
    episode_steps: int = field_(EPISODE_STEPS, min=1, help='control ticks per episode')
    autostart: bool = field_(False, help='start episodes without a command, without limit (see episodes)')
    episodes: int = field_(0, min=0, help='> 0: run this many episodes on its own (implies autostart)')
    wait_for_commander: bool = field_(True, help='lockstep autostart: wait until someone publishes '
                                                 'on servo_node/delta_twist_cmds')
    lockstep_timeout_s: float = field_(0.5, min=0.01, max=60.0,
                                       help='lockstep: wall time to wait for tick k\'s twist before stepping '
                                            'with zero velocity')
    first_tick_timeout_s: float = field_(10.0, min=0.01, max=600.0,
                                         help="lockstep: wall time to wait for tick 0's twist of an episode "
                                              '(the policy may still be matching the new stamps)')
    resend_s: float = field_(0.25, min=0.0, max=60.0,
                             help="lockstep: re-publish tick k's observations (same stamp) every this "
                                  'many wall s while its twist is missing (0 = never): a message lost '
                                  'while DDS endpoints still match then costs a pause, not a zero tick')
    match_wait_s: float = field_(5.0, min=0.0, max=60.0,
                                 help='lockstep autostart: wait up to this long (wall s) until every '
                                      'reader of the observation topics is matched')
    wait_for_recorder: bool = field_(False, help='start no episode before the recorder of this cell '
                                                 'reports ready on recorder/status (sim graphs that record)')
    recorder_wait_s: float = field_(30.0, min=0.0, max=600.0,
                                    help='wait_for_recorder: start anyway after this long (wall s), with an '
                                         'error (a recorder whose readers never match)')
    gripper_wait_s: float = field_(0.05, min=0.0, max=1.0,
                                   help='lockstep: extra wait for a gripper command after the twist arrived')
    watchdog_s: float = field_(ARM_COMMAND_TIMEOUT_S, min=0.01, max=5.0,
                               help='realtime: twist older than this -> zero velocity (Servo\'s timeout)')
    start_time_s: float = field_(1.0, min=0.0, help='lockstep: sim time of the first tick (s)')
    enforce_workspace: bool = field_(True, help='zero TCP velocity components that leave the workspace box')
    domain_randomization: bool = field_(False, help='randomise lighting, colours, cameras, friction, mass')
    cell: str = field_('', help='cell name in events (default: the node namespace, e.g. cell0)')


class SimBridge(Node):
    def __init__(self, **kwargs):
        super().__init__('sim_bridge', **kwargs)
        self.p = declare_params(self, Params)
        p = self.p
        unknown = [c for c in p.cameras if c not in CAMERA_NAMES]
        if unknown:
            raise ValueError(f'unknown cameras {unknown}; expected some of {CAMERA_NAMES}')
        self.lockstep = p.clock_mode == 'lockstep'
        self.cell = p.cell or self.get_namespace().strip('/') or 'cell0'
        cfg = SimConfig(image_size=p.image_size, cameras=tuple(p.cameras), render_images=p.render_images,
                        preset=p.preset, physics_timestep_s=p.physics_timestep_s or None,
                        episode_steps=p.episode_steps, triplet=p.triplet,
                        enforce_workspace=p.enforce_workspace,
                        domain_randomization=DomainRandomizationConfig(enabled=p.domain_randomization))
        self.get_logger().info(f'building the {p.preset} cell ({self.cell}, {p.clock_mode})...')
        self.env = RgbStackingEnv(cfg)
        self.runner = EpisodeRunner(self.env, self.cell, p.seed)
        self.cameras = tuple(p.cameras) if p.render_images else ()
        self.camera_infos = {c: camera_info_msg(c, p.image_size) for c in self.cameras}

        # publishers: one per topic a tick carries
        self.pubs = {n: create_contract_publisher(self, n) for n in T.tick_topics(self.cameras)}
        self.pub_clock = create_contract_publisher(self, T.CLOCK) if self.lockstep else None
        self.pub_events = create_contract_publisher(self, T.EPISODE_EVENTS)
        create_contract_subscription(self, T.TWIST_CMD, self._on_twist)
        create_contract_subscription(self, T.GRIPPER_CMD, self._on_gripper)
        create_contract_subscription(self, T.EPISODE_COMMAND, self._on_episode_command)
        if p.wait_for_recorder:
            create_contract_subscription(self, T.RECORDER_STATUS, self._on_recorder_status)
        self.create_service(Trigger, T.EPISODE_START, self._srv_start)
        self.create_service(Trigger, T.EPISODE_STOP, self._srv_stop)

        # command state
        self._sim_ns = int(round(p.start_time_s * 1e9))     # lockstep: stamp of the current tick
        self._tick_wall = 0.0                               # monotonic s when the tick was published
        self._twist: Optional[Tuple[np.ndarray, float]] = None   # lockstep: twist for the current tick
        self._twist_wall = 0.0
        self._gripper_rad = GRIPPER_OPEN_POSITION_RAD
        self._gripper_fresh = False
        self._rt_twist: Optional[Tuple[np.ndarray, float]] = None   # realtime: latest valid twist
        self._rt_twist_wall = -1e9
        self._stale = False
        self._autostarted = 0
        self._waits: Dict[str, float] = {}                 # bounded waits before a start: since (monotonic s)
        self._recorder_status: Optional[RecorderStatus] = None   # latest recorder/status (wait_for_recorder)
        self._deferred_start: Optional[EpisodeCommand] = None   # a start command waiting for the recorder
        self.counters = {'ticks': 0, 'twists': 0, 'rejected': 0, 'timeouts': 0, 'stale_ticks': 0,
                         'stale_grippers': 0, 'resends': 0, 'wait_ms': 0.0, 'step_ms': 0.0}
        self._tick_msgs: list = []                          # lockstep: what the current tick published
        self._sent_wall = 0.0                               # monotonic s of its last (re)publication
        self._closed = False

        steady = Clock(clock_type=ClockType.STEADY_TIME)
        if self.lockstep:
            # Commands step the cell from their callbacks; this poll only ends gripper waits and
            # lockstep timeouts (a faster poll costs a wait-set rebuild per wake-up).
            self.create_timer(LOCKSTEP_POLL_S, self._lockstep_poll, clock=steady)
        else:
            self.create_timer(CONTROL_PERIOD_S, self._realtime_tick, clock=steady)
        self.autostart = p.autostart or p.episodes > 0
        if self.autostart or p.wait_for_recorder:
            self.create_timer(0.1, self._start_poll, clock=steady)
        self.get_logger().info(f'{self.cell} ready: triplet {p.triplet}, {p.image_size}px '
                               f'{list(self.cameras)}, autostart={self.autostart}')

    # --- episode lifecycle -----------------------------------------------------------------------
    def _now_ns(self) -> int:
        return self._sim_ns if self.lockstep else self.get_clock().now().nanoseconds

    def start_episode(self, command: Optional[EpisodeCommand] = None) -> str:
        command = command or EpisodeCommand(op='start')
        if self.runner.running:
            self._publish_event(self.runner.abort(self._now_ns(), 'restarted by a start command'))
        if self.lockstep:
            self._sim_ns += TICK_NS                         # tick 0 gets a fresh, later stamp
        stamp = self._now_ns()
        event = self.runner.start(stamp, command.triplet, command.seed, command.tags)
        self._publish_event(event)
        self.get_logger().info(f'episode {event.episode_id[:8]} start: {event.triplet} {event.objects} '
                               f'seed {event.seed}')
        self._gripper_rad = GRIPPER_OPEN_POSITION_RAD
        self._gripper_fresh = False
        self._rt_twist = None
        self._publish_tick(stamp)
        return event.episode_id

    def stop_episode(self, reason: str) -> bool:
        event = self.runner.abort(self._now_ns(), reason)
        if event is None:
            return False
        self._publish_event(event)
        self.get_logger().warning(f'episode {event.episode_id[:8]} aborted after {event.steps} steps: {reason}')
        return True

    def _advance(self, linear: np.ndarray, yaw: float) -> None:
        """One transition with the given twist and the latest gripper target; publish the new tick."""
        action = command_to_action(linear, yaw, self._gripper_rad)
        t0 = time.monotonic()
        try:
            done = self.runner.step(action)
        except (FloatingPointError, ValueError) as exc:      # diverged physics: keep the node alive
            self.get_logger().error(f'simulation error, aborting the episode: {exc}')
            self.stop_episode(f'sim error: {exc}')
            return
        self.counters['ticks'] += 1
        if self.lockstep:
            self._sim_ns += TICK_NS
        stamp = self._now_ns()
        self._publish_tick(stamp)
        self.counters['step_ms'] += 1e3 * (time.monotonic() - t0)
        if done:
            event = self.runner.finish(stamp)
            self._publish_event(event)
            self.get_logger().info(f'episode {event.episode_id[:8]} end: success={event.success} '
                                   f'staged return {event.returns["staged"]:.1f}')

    def _publish_tick(self, stamp_ns: int) -> None:
        msgs = frame_to_messages(self.runner.frame, stamp_ns, self.cameras, self.camera_infos)
        msgs[T.REWARD_TERMS] = named_vector_msg(REWARD_TERMS, [self.runner.terms[k] for k in REWARD_TERMS],
                                                stamp_ns, T.WORLD_FRAME)
        out = [(self.pubs[name], msg) for name, msg in msgs.items() if name in self.pubs]
        if self.pub_clock is not None:
            out.insert(0, (self.pub_clock, ClockMsg(clock=ns_to_stamp(stamp_ns))))
        for pub, msg in out:
            pub.publish(msg)
        self._tick_wall = self._sent_wall = time.monotonic()
        self._tick_msgs = out if self.lockstep else []
        self._twist = None
        self._gripper_fresh = False

    def _resend_tick(self) -> None:
        """Lockstep: publish the current tick's messages again (same stamp). Everything downstream
        keys on the stamp: the policy answers a tick once and repeats that answer for a re-send, the
        recorder's decoder keeps one message per stamp, the safety filter sees no time pass."""
        for pub, msg in self._tick_msgs:
            pub.publish(msg)
        self._sent_wall = time.monotonic()
        self.counters['resends'] += 1
        self.get_logger().info(f'no twist for tick {self._sim_ns} ns yet: tick re-sent',
                               throttle_duration_sec=1.0)

    def _publish_event(self, event) -> None:
        if event is not None:
            self.pub_events.publish(String(data=event.to_json()))

    # --- commands --------------------------------------------------------------------------------
    def _reject(self, what: str, exc: Exception) -> None:
        self.counters['rejected'] += 1
        self.get_logger().warning(f'rejected {what}: {exc}', throttle_duration_sec=1.0)

    def _on_twist(self, msg) -> None:
        try:
            lin, yaw = validate_twist((msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z),
                                      (msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z),
                                      msg.header.frame_id)
        except InvalidCommand as exc:
            self._reject('twist', exc)
            return
        now = time.monotonic()
        self.counters['twists'] += 1
        if not self.lockstep:
            self._rt_twist, self._rt_twist_wall = (lin, yaw), now
            return
        if not self.runner.running:
            return
        stamp = stamp_to_ns(msg.header.stamp)
        if stamp != self._sim_ns:
            if stamp > self._sim_ns:
                self.get_logger().warning(f'twist stamped {stamp} ns is ahead of tick {self._sim_ns} ns; ignored',
                                          throttle_duration_sec=1.0)
            return                                        # an older tick's command: ignore
        self._twist, self._twist_wall = (lin, yaw), now
        self.counters['wait_ms'] += 1e3 * (now - self._tick_wall)
        self._lockstep_poll()

    def _on_gripper(self, msg) -> None:
        try:
            target = validate_gripper(msg.data)
        except InvalidCommand as exc:
            self._reject('gripper command', exc)
            return
        tick = gripper_tick_stamp(msg)
        if self.lockstep and tick is not None and tick != self._sim_ns:
            # a command tagged for another tick (e.g. the last tick of the previous episode, arriving
            # after this one started): applying it would act on the wrong tick
            self.counters['stale_grippers'] += 1
            return
        self._gripper_rad = target
        self._gripper_fresh = True
        if self.lockstep and self._twist is not None:
            self._lockstep_poll()

    def _on_episode_command(self, msg) -> None:
        try:
            cmd = EpisodeCommand.from_json(msg.data)
        except EventFormatError as exc:
            self._reject('episode command', exc)
            return
        if cmd.op == 'stop':
            self._deferred_start = None
            self.stop_episode(f'stop command {cmd.request_id[:8]}')
        elif not self._recorder_ready():
            self._deferred_start = cmd                      # the latest start command wins
            self.get_logger().info(f'start {cmd.request_id[:8]} waits for the recorder: '
                                   f'{self._recorder_unmatched() or "no recorder/status yet"}')
        else:
            self._run_start(cmd)

    def _on_recorder_status(self, msg) -> None:
        try:
            self._recorder_status = RecorderStatus.from_json(msg.data)
        except EventFormatError as exc:
            self._recorder_status = None
            self.get_logger().warning(f'malformed recorder/status ignored: {exc}')

    def _recorder_unmatched(self) -> dict:
        return self._recorder_status.unmatched if self._recorder_status is not None else {}

    def _run_start(self, cmd: EpisodeCommand) -> bool:
        try:
            self.start_episode(cmd)
            return True
        except (ValueError, KeyError) as exc:            # unknown triplet or object id
            self._reject('start command', exc)
            return False

    def _srv_start(self, request, response):
        ready = self._recorder_ready()
        response.success = not self.runner.running and ready and self._run_start(EpisodeCommand(op='start'))
        response.message = (f'started episode {self.runner.episode.episode_id}' if response.success
                            else 'refused: an episode is running' if self.runner.running
                            else 'refused: the recorder is not ready (recorder/status)' if not ready
                            else 'start failed (see log)')
        return response

    def _srv_stop(self, request, response):
        response.success = self.stop_episode('stop service')
        response.message = 'aborted' if response.success else 'no episode running'
        return response

    # --- clocks ----------------------------------------------------------------------------------
    def _lockstep_poll(self) -> None:
        if not self.runner.running:
            return
        now = time.monotonic()
        if self._twist is not None:
            if self._gripper_fresh or now - self._twist_wall >= self.p.gripper_wait_s:
                lin, yaw = self._twist
                self._advance(lin, yaw)
        else:
            first = self.runner.episode is not None and self.runner.episode.steps == 0
            timeout = self.p.first_tick_timeout_s if first else self.p.lockstep_timeout_s
            if 0 < self.p.resend_s <= now - self._sent_wall and now - self._tick_wall <= timeout:
                self._resend_tick()
            if now - self._tick_wall > timeout:
                self.counters['timeouts'] += 1
                self.get_logger().warning(
                    f'no twist for tick {self._sim_ns} ns within {timeout} s: zero velocity',
                    throttle_duration_sec=1.0)
                self._advance(np.zeros(3), 0.0)
        if not self.runner.running and self.autostart:
            self._autostart_poll()

    def _realtime_tick(self) -> None:
        if not self.runner.running:
            return
        fresh = self._rt_twist is not None and time.monotonic() - self._rt_twist_wall <= self.p.watchdog_s
        if fresh:
            lin, yaw = self._rt_twist
            self._stale = False
        else:
            lin, yaw = np.zeros(3), 0.0
            self.counters['stale_ticks'] += 1
            if not self._stale and self._rt_twist is not None:
                self.get_logger().warning(f'watchdog: no twist for > {self.p.watchdog_s} s: zero velocity')
            self._stale = True
        self._advance(lin, yaw)

    def _start_poll(self) -> None:
        """A start command that waits for the recorder, else the next autostart episode."""
        if self._deferred_start is not None and not self._closed and self._recorder_ready():
            cmd, self._deferred_start = self._deferred_start, None
            self._run_start(cmd)
        if self.autostart:
            self._autostart_poll()

    def _autostart_poll(self) -> None:
        p = self.p
        if self.runner.running or self._closed:
            return
        if p.episodes and self._autostarted >= p.episodes:
            return
        if self.lockstep and p.wait_for_commander and self.count_publishers(T.TWIST_CMD) == 0:
            return
        if not self._recorder_ready():
            return
        if self.lockstep and not self._subscribers_matched():
            return
        self._autostarted += 1
        self.start_episode()

    def _bounded_wait(self, what: str, ok: bool, limit_s: float) -> str:
        """'ok'; 'wait' while `what` has not been ok for less than `limit_s` (wall s); 'gave up' after
        that (the caller logs why it goes on). The wait starts again after 'ok' and 'gave up'."""
        if ok:
            self._waits.pop(what, None)
            return 'ok'
        since = self._waits.setdefault(what, time.monotonic())
        if time.monotonic() - since < limit_s:
            return 'wait'
        del self._waits[what]
        return 'gave up'

    def _recorder_ready(self) -> bool:
        """wait_for_recorder: has a live recorder said `ready` on recorder/status? Gives up after
        `recorder_wait_s` with an error (the episode then starts and its losses show in its metadata)."""
        if not self.p.wait_for_recorder:
            return True
        ready = (self._recorder_status is not None and self._recorder_status.ready
                 and self.count_publishers(T.RECORDER_STATUS) > 0)
        state = self._bounded_wait('recorder', ready, self.p.recorder_wait_s)
        if state == 'gave up':
            self.get_logger().error(f'starting although the recorder is not ready after {self.p.recorder_wait_s} s: '
                                    f'{self._recorder_unmatched() or "no recorder/status"}',
                                    throttle_duration_sec=10.0)
        return state != 'wait'

    def _subscribers_matched(self) -> bool:
        """Lockstep autostart: has every observation publisher matched every reader the graph shows
        (a recorder discovered but not yet matched would lose a whole short episode)? Gives up
        after `match_wait_s` (a reader with incompatible QoS never matches) with a warning."""
        unmatched = [pub.topic_name for pub in self.pubs.values()
                     if pub.get_subscription_count() < self.count_subscribers(pub.topic_name)]
        state = self._bounded_wait('readers', not unmatched, self.p.match_wait_s)
        if state == 'gave up':
            self.get_logger().warning(f'starting although {unmatched} have readers not matched after '
                                      f'{self.p.match_wait_s} s (incompatible QoS?)', throttle_duration_sec=10.0)
        return state != 'wait'

    # --- shutdown --------------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        c, n = self.counters, max(1, self.counters['ticks'])
        self.get_logger().info(f'{self.cell} closing: {c}; per tick: step+publish {c["step_ms"] / n:.2f} ms, '
                               f'command wait {c["wait_ms"] / n:.2f} ms')
        try:
            self.stop_episode('shutdown')
        except Exception:  # noqa: BLE001 - the context may already be gone
            pass
        self.env.close()


NODE_PARAMS = {'sim_bridge': Params}


def _abort_on_signals() -> None:
    """SIGINT/SIGTERM raise KeyboardInterrupt in the spinning main thread (instead of rclpy's
    handler, which shuts the context down first), so close() can still publish the abort event."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


def _factory() -> SimBridge:
    node = SimBridge()
    _abort_on_signals()
    return node


def main(args=None) -> None:
    sys.exit(spin_node(_factory, args=args))


if __name__ == '__main__':
    main()

