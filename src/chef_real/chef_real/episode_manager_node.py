"""episode_manager: owns the episode lifecycle of a real cell (the sim bridge does it in sim).

In:  episode/command (start | stop), reward/terms (pixel reward node), safety/estop, joint_states
     (watchdog, finger), gripper/grasp_status, sim/object_poses (object estimates for resets).
Out: episode/events (start / end / abort, the same JSON as the sim, source 'real').
Services (operator): ~/pause (std_srvs/SetBool: true aborts a running episode and holds the queue),
     ~/abort (std_srvs/Trigger: aborts and clears the queue), ~/reset_done (std_srvs/Trigger: the
     operator finished a manual reset, reset_mode 'manual').
Between episodes it returns home and re-randomises the objects (chef_real.episode.ResetPlanner)
through moveit_py (reset_mode 'moveit'), calls the cell's own reset routine as a std_srvs/Trigger
service (`service`: `reset_service`, answered by the MuJoCo hardware emulator or a lab's routine),
waits for the operator ('manual') or does nothing ('none').
An episode lasts episode_steps control ticks. A tick is (tick_source 'joint_states', the default) each new
stamp of the cell's joint_states at most one per 0.9 tick periods, the ticks the state adapter publishes
observations on: a driver that runs slow lengthens the episode in wall time and never leaves ticks
without an observation; or ('timer') a wall-clock timer at tick_rate_hz.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from dataclasses import dataclass
from typing import List, Optional

import yaml
from rclpy.node import Node

from chef_contract import events as E
from chef_contract.events import EventFormatError
from chef_contract.payloads import PolicyInfo, RecorderStatus
from chef_contract import topics as T
from chef_contract.config import field_
from chef_contract.params import declare_params
from chef_contract.ros import (
    create_contract_publisher, create_contract_subscription, msg_to_pose7, named_vector_values, spin_node,
    stamp_to_ns,
)
from chef_contract.spec import (
    CONTROL_RATE_HZ, EPISODE_STEPS, GRASP_NONE, GRIPPER_JOINT_NAME, OBJECT_COLOURS, TEST_TRIPLETS,
)
from chef_real.cell_state import is_new_tick
from chef_real.episode import EpisodeLifecycle, ResetPlanner
from chef_real.motion import MotionError, NullMotion

RESET_MODES = ('moveit', 'service', 'manual', 'none')
TICK_SOURCES = ('joint_states', 'timer')


@dataclass
class Params:
    cell: str = field_('', help="cell name in events; '' = the node's namespace (e.g. cell0)")
    triplet: str = field_('rgb_test_triplet1', help='the triplet physically in this cell')
    objects: List[str] = field_(default_factory=list,
                                help='object ids (red, green, blue); empty = from triplet (test triplets)')
    first_seed: int = field_(0, help='seed of the first episode without an explicit seed', min=0)
    reset_mode: str = field_('moveit', choices=RESET_MODES,
                             help='moveit: home + pick-and-drop routine; service: call reset_service; '
                                  'manual: wait for ~/reset_done; none')
    reset_service: str = field_('cell_reset', help="reset_mode 'service': std_srvs/Trigger service of the "
                                "cell's reset routine (relative names resolve in the cell namespace)")
    reset_timeout_s: float = field_(60.0, help="reset_mode 'service': fail the reset after this long", min=0.1)
    reset_seed_node: str = field_('', help="reset_mode 'service': node whose integer parameter `seed` is set "
                                  "to the episode's seed before each reset (rcl_interfaces SetParameters), so "
                                  "the layout is reproducible from the episode seed: the MuJoCo emulator's "
                                  "hardware_emulator; '' = the routine draws its own layout (a physical cell)")
    episode_steps: int = field_(EPISODE_STEPS, help='control ticks per episode', min=1)
    tick_rate_hz: float = field_(CONTROL_RATE_HZ, help='control ticks per second', min=1.0, max=1000.0)
    tick_source: str = field_('joint_states', choices=TICK_SOURCES,
                              help="joint_states: a tick per new joint_states stamp (>= 0.9 periods apart, the "
                                   "state adapter's ticks); timer: a wall-clock timer at tick_rate_hz")
    wait_for_recorder: bool = field_(False, help="start no episode before this cell's recorder says ready on "
                                     "recorder/status (matched to every topic it records, the policy's "
                                     "commands included): graphs that record set it")
    wait_for_policy: bool = field_(False, help="start no episode before this cell's policy says on policy/info "
                                   "that a policy is loaded and its inputs and episode/events flow "
                                   "(inputs_ready): without it the first episode after launch lost its first "
                                   "6-32 ticks to DDS discovery")
    ready_wait_s: float = field_(30.0, min=0.0, max=600.0, help='wait_for_recorder/policy: start anyway after this '
                                 'long (wall s), with an error (its losses show in the bag)')
    ready_settle_s: float = field_(1.0, min=0.0, max=60.0, help='wait_for_recorder/policy: start no episode until '
                                   'everything waited for has been ready this long (the publishers matched by '
                                   'the recorder also match it)')
    joint_states_timeout_s: float = field_(0.5, help='abort a running episode when joint_states is older', min=0.01)
    robot_description: str = field_('', help='URDF text (moveit_py, home heading)')
    robot_description_semantic: str = field_('', help='SRDF text (moveit_py)')
    moveit_config_files: List[str] = field_(
        default_factory=list, help='moveit_py.yaml, kinematics.yaml, joint_limits.yaml (absolute paths)')


def moveit_config_dict(files: List[str], urdf: str, srdf: str) -> dict:
    """MoveItPy config_dict from the YAML files (ROS params files are unwrapped) + descriptions."""
    cfg: dict = {}
    for f in files:
        with open(f, encoding='utf-8') as fh:
            data = yaml.safe_load(fh) or {}
        if len(data) == 1 and isinstance(next(iter(data.values())), dict) and \
                'ros__parameters' in next(iter(data.values())):
            data = next(iter(data.values()))['ros__parameters']
        cfg.update(data)
    cfg['robot_description'] = urdf
    cfg['robot_description_semantic'] = srdf
    return cfg


class EpisodeManager(Node):
    def __init__(self, **kwargs):
        super().__init__('episode_manager', **kwargs)
        self.p = declare_params(self, Params)
        objects = list(self.p.objects) or list(TEST_TRIPLETS.get(self.p.triplet, ()))
        if len(objects) != 3:
            raise ValueError(f'triplet {self.p.triplet!r} is not a test triplet: set objects: [red, green, blue]')
        cell = self.p.cell or self.get_namespace().strip('/') or 'cell0'
        self.events_pub = create_contract_publisher(self, T.EPISODE_EVENTS)
        self.life = EpisodeLifecycle(cell, self.p.triplet, objects, self._emit, self.p.first_seed,
                                     self.p.episode_steps)
        self.planner = ResetPlanner()
        self._terms: Optional[dict] = None
        self._terms_fresh = False
        self._joint_t: Optional[float] = None
        self._tick_stamp_ns: Optional[int] = None     # tick_source joint_states: the last tick's stamp
        self._tick0_of: Optional[str] = None          # tick_source joint_states: the episode whose tick 0 came
        self._recorder_status: Optional[RecorderStatus] = None
        self._policy_info: Optional[PolicyInfo] = None
        self._ready_wait_since: Optional[float] = None
        self._ready_since: Optional[float] = None
        self._finger: Optional[tuple] = None
        self._grasp = GRASP_NONE
        self._objects: Optional[dict] = None
        self._manual_done = threading.Event()
        self.resets_done = 0
        self.motion = self._make_motion()
        self._jobs: 'queue.Queue' = queue.Queue()
        self._worker = threading.Thread(target=self._work, daemon=True)
        self._worker.start()

        create_contract_subscription(self, T.EPISODE_COMMAND, self._on_command)
        create_contract_subscription(self, T.REWARD_TERMS, self._on_terms)
        create_contract_subscription(self, T.ESTOP, self._on_estop)
        create_contract_subscription(self, T.JOINT_STATES, self._on_joints)
        create_contract_subscription(self, T.GRASP_STATUS, self._on_grasp)
        create_contract_subscription(self, T.OBJECT_POSES, self._on_objects)
        if self.p.wait_for_recorder:
            create_contract_subscription(self, T.RECORDER_STATUS,
                                         self._keep_latest('_recorder_status', RecorderStatus, T.RECORDER_STATUS))
        if self.p.wait_for_policy:
            create_contract_subscription(self, T.POLICY_INFO,
                                         self._keep_latest('_policy_info', PolicyInfo, T.POLICY_INFO))
        from std_srvs.srv import SetBool, Trigger
        self.create_service(SetBool, '~/pause', self._srv_pause)
        self.create_service(Trigger, '~/abort', self._srv_abort)
        self.create_service(Trigger, '~/reset_done', self._srv_reset_done)
        self._reset_client = self._seed_client = None
        if self.p.reset_mode == 'service':
            from rclpy.callback_groups import ReentrantCallbackGroup
            self._reset_client = self.create_client(Trigger, self.p.reset_service,
                                                    callback_group=ReentrantCallbackGroup())
            if self.p.reset_seed_node:
                from rcl_interfaces.srv import SetParameters
                self._seed_client = self.create_client(
                    SetParameters, f'{self.p.reset_seed_node.rstrip("/")}/set_parameters',
                    callback_group=ReentrantCallbackGroup())
        self.create_timer(1.0 / self.p.tick_rate_hz, self._tick)
        self.get_logger().info(f'{cell}: triplet {self.p.triplet} {objects}, reset_mode {self.p.reset_mode}')

    def _make_motion(self):
        if self.p.reset_mode != 'moveit':
            return NullMotion()
        from chef_real.kinematics import RobotModel
        from chef_real.motion import MoveItPyMotion, hand_from_tcp, home_heading
        from chef_real.description import home_joint_positions
        from chef_contract.spec import ARM_JOINT_NAMES
        model = RobotModel(self.p.robot_description)
        home = dict(zip(ARM_JOINT_NAMES, home_joint_positions(self.p.robot_description)))
        cfg = moveit_config_dict(self.p.moveit_config_files, self.p.robot_description,
                                 self.p.robot_description_semantic)
        return MoveItPyMotion(self, cfg, hand_from_tcp(model), home_heading(model, home),
                              finger=lambda: self._finger, grasp_status=lambda: self._grasp)

    # --- time ---------------------------------------------------------------------------------
    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    # --- inputs -------------------------------------------------------------------------------
    def _emit(self, ev: E.EpisodeEvent):
        from std_msgs.msg import String
        self.events_pub.publish(String(data=ev.to_json()))
        self.get_logger().info(f'episode {ev.event} {ev.episode_id[:8]} steps {ev.steps}'
                               + (f' success {ev.success}' if ev.event == 'end' else '')
                               + (f' ({ev.reason})' if ev.reason else ''))
        if ev.event in ('end', 'abort'):
            self._jobs.put(('end_episode', None))

    def _on_command(self, msg):
        try:
            cmd = E.EpisodeCommand.from_json(msg.data)
        except E.EventFormatError as exc:
            self.get_logger().error(f'{T.EPISODE_COMMAND}: {exc}')
            return
        reason = self.life.command(cmd, self._now_ns())
        if reason:
            self.get_logger().error(f'episode command rejected: {reason}')
            ep = E.EpisodeEvent('abort', E.new_episode_id(), self.life.cell, 'real', cmd.triplet,
                                int(cmd.seed or 0), self._now_ns(), reason=reason, tags=dict(cmd.tags))
            self._emit(ep)

    def _on_terms(self, msg):
        self._terms = named_vector_values(msg)
        self._terms_fresh = True

    def _on_estop(self, msg):
        self.life.set_estop(bool(msg.data), self._now_ns())

    def _on_joints(self, msg):
        self._joint_t = time.monotonic()
        if self.p.tick_source == 'joint_states':
            stamp = stamp_to_ns(msg.header.stamp)
            if is_new_tick(stamp, self._tick_stamp_ns, self.p.tick_rate_hz):
                self._tick_stamp_ns = stamp
                self._control_tick(stamp)
        names = list(msg.name)
        if GRIPPER_JOINT_NAME in names:
            i = names.index(GRIPPER_JOINT_NAME)
            pos = msg.position[i] if i < len(msg.position) else float('nan')
            vel = msg.velocity[i] if i < len(msg.velocity) else 0.0
            self._finger = (float(pos), float(vel))

    def _on_grasp(self, msg):
        self._grasp = int(round(named_vector_values(msg).get('grasp_status', GRASP_NONE)))

    def _on_objects(self, msg):
        if len(msg.poses) == len(OBJECT_COLOURS):
            self._objects = {c: msg_to_pose7(p)[:3] for c, p in zip(OBJECT_COLOURS, msg.poses)}

    # --- services -----------------------------------------------------------------------------
    def _srv_pause(self, req, res):
        self.life.set_paused(req.data, self._now_ns())
        res.success, res.message = True, 'paused' if req.data else 'running'
        return res

    def _srv_abort(self, req, res):
        self.life.pending.clear()
        res.success = self.life.abort('operator abort', self._now_ns())
        res.message = 'aborted' if res.success else 'no episode to abort'
        return res

    def _srv_reset_done(self, req, res):
        self._manual_done.set()
        res.success, res.message = True, 'reset acknowledged'
        return res

    # --- the tick -----------------------------------------------------------------------------
    def _tick(self):
        """Timer at tick_rate_hz: the watchdog, the next episode's reset, and (tick_source 'timer') the ticks."""
        now = self._now_ns()
        if self.life.phase == 'running':
            if self._joint_t is None or time.monotonic() - self._joint_t > self.p.joint_states_timeout_s:
                self.life.abort(f'watchdog: no {T.JOINT_STATES} for {self.p.joint_states_timeout_s} s', now)
                return
            if self.p.tick_source == 'timer':
                self._control_tick()
            return
        if self.life.pending and not self._cell_ready():
            return
        ep = self.life.take_next()
        if ep is not None:
            self._jobs.put(('reset', ep))

    def _keep_latest(self, attr: str, payload_type, topic: str):
        """A callback keeping the newest `payload_type` JSON of `topic` in self.<attr> (malformed: None)."""
        def on_msg(msg):
            try:
                setattr(self, attr, payload_type.from_json(msg.data))
            except EventFormatError as exc:
                setattr(self, attr, None)
                self.get_logger().warning(f'malformed {topic} ignored: {exc}')
        return on_msg

    def _not_ready(self) -> str:
        """What a start still waits for ('' = nothing): the recorder's `ready` (wait_for_recorder),
        the policy's `inputs_ready` (wait_for_policy), each from a live publisher."""
        why = []
        if self.p.wait_for_recorder:
            st = self._recorder_status
            if st is None or self.count_publishers(T.RECORDER_STATUS) == 0:
                why.append('no recorder/status')
            elif not st.ready:
                why.append(f'recorder: {st.unmatched or "not ready"}')
        if self.p.wait_for_policy:
            info = self._policy_info
            if info is None or self.count_publishers(T.POLICY_INFO) == 0:
                why.append('no policy/info')
            elif not info.ready:
                why.append(f'policy: {info.load_error or "none loaded"}')
            elif not info.inputs_ready:
                why.append(f'policy {info.policy_id}: inputs not complete yet')
        return '; '.join(why)

    def _cell_ready(self) -> bool:
        """May the next episode start? Only once the recorder and the policy waited for have been
        ready for ready_settle_s (the first episode after launch would otherwise lose the ticks
        before their subscriptions matched); after ready_wait_s it starts anyway, with an error."""
        if not (self.p.wait_for_recorder or self.p.wait_for_policy):
            return True
        now = time.monotonic()
        why = self._not_ready()
        if not why:
            if self._ready_since is None:
                self._ready_since = now
            if now - self._ready_since >= self.p.ready_settle_s:
                self._ready_wait_since = None
                return True
            why = f'ready, settling {self.p.ready_settle_s} s'
        else:
            self._ready_since = None
        if self._ready_wait_since is None:
            self._ready_wait_since = now
            self.get_logger().info(f'start waits: {why}')
        if now - self._ready_wait_since < self.p.ready_wait_s:
            return False
        self.get_logger().error(f'starting although not ready after {self.p.ready_wait_s} s: {why}',
                                throttle_duration_sec=10.0)
        return True

    def _control_tick(self, stamp_ns: Optional[int] = None):
        """One control tick of the running episode (none running: nothing), with the reward terms
        that arrived since the previous tick (none: counted missing). With tick_source joint_states
        the episode's first tick is its tick 0, the initial observation (as a sim episode's): steps
        count the ticks after it, so the end comes with the observation that follows the last
        command, not before that command could be answered and recorded. A tick stamped before the
        start event is not the episode's (the policy acts from the start's stamp on)."""
        if self.life.phase != 'running':
            return
        ep = self.life.current
        if stamp_ns is not None and ep is not None and stamp_ns < ep.start_stamp_ns:
            return
        if self.p.tick_source == 'joint_states' and ep is not None and ep.episode_id != self._tick0_of:
            self._tick0_of = ep.episode_id
            self._terms_fresh = False          # terms from before tick 0 are not this episode's
            return
        terms = self._terms if self._terms_fresh else None
        self._terms_fresh = False
        # the end is stamped with the final tick's observation (joint_states: its stamp), so the bag's
        # last step is that observation, and a command answering it is not the episode's
        self.life.tick(terms, stamp_ns if stamp_ns is not None else self._now_ns())

    # --- worker thread: blocking motions ------------------------------------------------------
    def _work(self):
        while True:
            job, arg = self._jobs.get()
            if job is None:
                return
            try:
                if job == 'reset':
                    self._reset(arg)
                elif job == 'end_episode':
                    self.motion.end_episode()
            except Exception as exc:  # noqa: BLE001 - a failed job must not kill the worker
                self.get_logger().error(f'{job}: {type(exc).__name__}: {exc}')
                if job == 'reset':
                    self.life.reset_done(False, self._now_ns(), f'{type(exc).__name__}: {exc}')

    def _reset(self, ep):
        mode = self.p.reset_mode
        self.get_logger().info(f'reset for episode {ep.episode_id[:8]} (seed {ep.seed}, mode {mode})')
        if mode == 'moveit':
            if self._objects is None:
                raise MotionError(f'no object estimates on {T.OBJECT_POSES} (is pixel_reward running?)')
            for name, steps in self.planner.plan(self._objects, ep.seed):
                try:
                    for step in steps:
                        if self.life.phase != 'resetting':
                            return                      # aborted meanwhile
                        self.motion.execute(step)
                except MotionError as exc:
                    if name in ('home', 'start'):
                        raise
                    self.get_logger().warning(f'reset: skipping {name}: {exc}')
                    from chef_real.episode import MotionStep
                    self.motion.execute(MotionStep('gripper', closed=False, note='release'))
        elif mode == 'service':
            if self._seed_client is not None:
                self._set_reset_seed(ep.seed)
            self._call_reset_service()
        elif mode == 'manual':
            self._manual_done.clear()
            self.get_logger().warning('manual reset: re-randomise the objects, then call ~/reset_done')
            while not self._manual_done.wait(0.5):
                if self.life.phase != 'resetting':
                    return
        self.motion.prepare_episode()
        self.life.reset_done(True, self._now_ns())

    def _call(self, client, request):
        """Blocking service call from the worker thread (the executor delivers the answer); MotionError
        when the service is missing or gives no answer within reset_timeout_s."""
        name = client.srv_name
        if not client.wait_for_service(timeout_sec=self.p.reset_timeout_s):
            raise MotionError(f'service {name} is not available')
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(self.p.reset_timeout_s):
            future.cancel()
            raise MotionError(f'service {name}: no answer in {self.p.reset_timeout_s} s')
        return future.result()

    def _set_reset_seed(self, seed: int) -> None:
        """`seed` := the episode's seed on reset_seed_node, before its reset routine draws the layout."""
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters
        req = SetParameters.Request(parameters=[Parameter(name='seed', value=ParameterValue(
            type=ParameterType.PARAMETER_INTEGER, integer_value=int(seed)))])
        res = self._call(self._seed_client, req)
        result = res.results[0] if res is not None and res.results else None
        if result is None or not result.successful:
            raise MotionError(f'{self._seed_client.srv_name}: seed {seed} refused: '
                              f'{getattr(result, "reason", "no result")}')

    def _call_reset_service(self):
        """Blocking call of the cell's reset routine."""
        from std_srvs.srv import Trigger
        name = self._reset_client.srv_name
        res = self._call(self._reset_client, Trigger.Request())
        if res is None or not res.success:
            raise MotionError(f'reset service {name} failed: {getattr(res, "message", "no result")}')
        self.resets_done += 1
        self.get_logger().info(f'cell reset by {name}: {res.message}')

    def close(self):
        self._jobs.put((None, None))
        self.motion.close()


NODE_PARAMS = {'episode_manager': Params}


def main(args=None):
    sys.exit(spin_node(EpisodeManager, args=args))
