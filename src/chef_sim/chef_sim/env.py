"""RGB-Stacking environment (ROS-free, Gymnasium-style): the cell every later stage trains in.

    env = RgbStackingEnv(SimConfig(render_images=False))
    obs, info = env.reset(seed=0, triplet='rgb_test_triplet1')
    obs, reward, terminated, truncated, info = env.step(np.zeros(5))

Faithful to rgb_stacking @ 794c343 (spec §B): 20 Hz control, 400-step fixed-length episodes
(truncated=True at step 400, terminated always False), 0.5 ms physics in the 'faithful' preset, the
5-D action in [-1, 1] (x 0.07 m/s world xyz, x 1 rad/s yaw, bang-bang gripper) through the workspace
zeroing and Cartesian controller of controller.py, the initial-state distribution of §B.9, every
observation of §B.7 in the benchmark's names and units (stacked with chef_contract.obs.FrameStacker:
3 state frames, 2 action frames, newest first), the shaped staged reward and the five stage terms
(chef_contract.rewards, shared with the real cell) plus the contact-based sparse success. What differs from the benchmark code, and the
'fast' preset, are listed in docs/sim.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import mujoco
import numpy as np

from chef_contract.action import InvalidAction, check_finite
from chef_contract.config import field_
from chef_contract.obs import FrameStacker
from chef_contract.spec import (
    ACTION_DIM, CAMERA_NAMES, CONTROL_PERIOD_S, EPISODE_STEPS, GRASP_INWARD, GRASP_NONE,
    GRASP_OUTWARD, GRIPPER_CTRL_RANGE, MAX_LINEAR_SPEED_MPS, MAX_YAW_RATE_RPS, OBJECT_COLOURS,
    PROP_POSITION_HIGH_M, PROP_POSITION_LOW_M, REWARD_TERMS, TCP_POSITION_HIGH_M, TCP_POSITION_LOW_M,
    TCP_YAW_RANGE_RAD, image_key,
)
from chef_sim import assets as A
from chef_contract import rewards as R
from chef_sim import scene as S
from chef_sim.controller import CartesianVelocityController, pose_ik, workspace_zeroing
from chef_sim.randomization import DomainRandomizationConfig, DomainRandomizer

PRESETS = ('faithful', 'fast')
# preset -> (physics timestep s, noslip iterations). See docs/sim.md for what 'fast' changes.
PRESET_PHYSICS = {'faithful': (0.0005, 5), 'fast': (0.002, 0)}
SETTLE_QVEL_TOL = 1e-3           # rad/s, m/s   (dm_control PropPlacer)
SETTLE_QACC_TOL = 1e-2
PROP_PLACEMENT_ATTEMPTS = 20     # rejection-sampling attempts per prop (PropPlacer)
GRASP_CTRL_TOLERANCE = 2.0       # |gripper ctrl| below this never reports a grasp (moma)
CONTACT_MARGIN_M = 1e-8          # contacts with dist above this are ignored (benchmark helpers)
FINGER_SCALE = 255.0
_EMPTY = np.zeros(0, np.int64)


@dataclass
class SimConfig:
    """Configuration of one simulated cell (strict: unknown keys are errors in load_config)."""

    image_size: int = field_(128, help='rendered image height = width (px)', min=16, max=1024)
    cameras: Tuple[str, ...] = field_(CAMERA_NAMES, help='cameras rendered into <camera>/pixels')
    render_images: bool = field_(True, help='render the cameras at every step (False = state only)')
    preset: str = field_('faithful', help="'faithful' = 0.5 ms physics as the benchmark; 'fast' = "
                         '2 ms, no noslip pass (docs/sim.md)', choices=PRESETS)
    physics_timestep_s: Optional[float] = field_(None, help='override the preset physics step (s)',
                                                  min=1e-4, max=0.01)
    noslip_iterations: Optional[int] = field_(None, help='override the preset noslip iterations', min=0, max=100)
    episode_steps: int = field_(EPISODE_STEPS, help='control ticks per episode (truncated after)', min=1)
    triplet: str = field_('rgb_test_triplet1', help="default triplet: rgb_test_triplet1..5, "
                          "rgb_train_random, rgb_heldout_random, rgb_test_random, or ids 'r3,s0,b2'")
    enforce_workspace: bool = field_(True, help='zero TCP velocity components that leave the workspace box')
    enforce_wrist_limit: bool = field_(True, help='zero yaw that turns right_j6 beyond +-pi/2')
    seed: Optional[int] = field_(None, help='seed of the first reset when reset() gets none')
    render_proxies: bool = field_(True, help='draw decimated copies of high-poly robot meshes (physics unchanged)')
    shadows: bool = field_(False, help='shadow mapping (about 25x slower on llvmpipe)')
    msaa: bool = field_(False, help='4x multisampling of the offscreen buffer')
    reflections: bool = field_(False, help='floor reflection pass (doubles render cost)')
    settle_max_s: float = field_(2.0, help='max simulated time to let dropped objects settle (s)', min=0.0)
    domain_randomization: DomainRandomizationConfig = field_(
        default_factory=DomainRandomizationConfig, help='optional domain randomisation (off by default)')

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f'preset must be one of {PRESETS}, got {self.preset!r}')
        unknown = [c for c in self.cameras if c not in CAMERA_NAMES]
        if unknown:
            raise ValueError(f'unknown cameras {unknown}; expected a subset of {CAMERA_NAMES}')
        self.cameras = tuple(self.cameras)

    @property
    def timestep_s(self) -> float:
        return self.physics_timestep_s if self.physics_timestep_s is not None else PRESET_PHYSICS[self.preset][0]

    @property
    def noslip(self) -> int:
        return self.noslip_iterations if self.noslip_iterations is not None else PRESET_PHYSICS[self.preset][1]

    @property
    def substeps(self) -> int:
        n = CONTROL_PERIOD_S / self.timestep_s
        if abs(n - round(n)) > 1e-6:
            raise ValueError(f'physics step {self.timestep_s} s does not divide the 0.05 s control period')
        return int(round(n))

    def scene_options(self) -> S.SceneOptions:
        return S.SceneOptions(physics_timestep_s=self.timestep_s, noslip_iterations=self.noslip,
                              shadows=self.shadows, msaa=self.msaa, reflections=self.reflections,
                              render_proxies=self.render_proxies,
                              offscreen_size_px=max(256, self.image_size))


def quat_from_mat(mat9: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a row-major rotation matrix, sign chosen so that w >= 0."""
    q = np.empty(4)
    mujoco.mju_mat2Quat(q, np.asarray(mat9, np.float64))
    return -q if q[0] < 0 else q


def down_rotation(yaw_rad: float) -> np.ndarray:
    """Rotation of the benchmark's TCP pose sample: euler XYZ (pi, 0, yaw) = Rx(pi) Rz(yaw)."""
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return np.diag([1.0, -1.0, -1.0]) @ rz


class RgbStackingEnv:
    """One simulated RGB-Stacking cell. Not thread-safe; one instance per process thread."""

    metadata = {'render_fps': 20}

    def __init__(self, config: Optional[SimConfig] = None):
        self.config = config or SimConfig()
        cfg = self.config
        self._substeps = cfg.substeps
        scene = S.compiled_scene(cfg.scene_options())
        self.model: mujoco.MjModel = scene.model
        self.index: S.SceneIndex = scene.index
        self.catalog: S.ObjectCatalog = scene.catalog
        self.data = mujoco.MjData(self.model)
        ix = self.index
        self.controller = CartesianVelocityController(
            self.model, ix.wrist_site, ix.arm_dof, ix.arm_qpos, ix.arm_joint_range)
        self._randomizer = (DomainRandomizer(self.model, ix, cfg.domain_randomization)
                            if cfg.domain_randomization.enabled else None)
        self._stacker = FrameStacker()
        self._renderer: Optional[mujoco.Renderer] = None
        self._views: Dict[tuple, mujoco.Renderer] = {}
        self._objects: Tuple[str, str, str] = S.COMPILED_TRIPLET      # props of the compiled model
        self._seed_seq = np.random.SeedSequence(cfg.seed)
        self._rng = np.random.default_rng(self._seed_seq.spawn(1)[0])
        self._triplet = cfg.triplet
        self._step = 0
        self._needs_reset = True
        self._frame: Dict[str, np.ndarray] = {}
        self._prev_finger = 0.0
        self._joint_cmd = np.zeros(8)
        self._episode_seed: Optional[int] = None
        self._closed = False
        ng = self.model.ngeom

        def mask(ids):
            out = np.zeros(ng, bool)
            out[list(ids)] = True
            return out
        self._masks = {c: mask(ix.prop_geoms[c]) for c in OBJECT_COLOURS}
        self._masks.update(pad_right=mask([ix.pad_geoms[0]]), pad_left=mask([ix.pad_geoms[1]]),
                           not_pad=~mask(ix.pad_geoms), robot=ix.robot_geom_mask.copy(),
                           ground=ix.ground_geom_mask.copy(), any=np.ones(ng, bool))
        self._pairs = (_EMPTY, _EMPTY)

    # ---------------------------------------------------------------------------------------------
    @property
    def objects(self) -> Tuple[str, str, str]:
        return self._objects

    @property
    def triplet(self) -> str:
        return self._triplet

    @property
    def step_count(self) -> int:
        return self._step

    @property
    def sim_time_s(self) -> float:
        return self._step * CONTROL_PERIOD_S

    @property
    def episode_seed(self) -> Optional[int]:
        return self._episode_seed

    # ---------------------------------------------------------------------------------------------
    def reset(self, seed: Optional[int] = None, triplet: Optional[str] = None,
              options: Optional[Dict[str, Any]] = None) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
        """Start an episode: sample objects (for random sets), robot and object poses; settle.

        seed: episode seed (same seed + same triplet + same config = same episode); None draws one
        from the env's own seed sequence. triplet: as SimConfig.triplet; None keeps the current one.
        """
        del options
        self._check_open()
        if seed is None:
            seed = int(self._rng.integers(2**31 - 1))
        self._episode_seed = int(seed)
        rng = np.random.default_rng(self._episode_seed)
        if triplet is not None:
            self._triplet = triplet
        objects = A.parse_triplet(self._triplet, rng)
        m, d, ix = self.model, self.data, self.index
        changed = objects != self._objects or self._randomizer is not None
        if changed:
            for colour, oid in zip(OBJECT_COLOURS, objects):
                self.catalog.assign(m, d, ix, colour, oid)
            self._objects = objects
        dr_info = self._randomizer.apply(m, rng) if self._randomizer is not None else {}
        if changed or dr_info:
            S.set_const(m, d)

        mujoco.mj_resetData(m, d)
        self._place_robot(rng)
        self._place_props(rng)
        self._settle()
        d.time = 0.0
        # Tick 0: the command a zero action would send (moma runs its effectors at reset, so the
        # benchmark's action/environment already holds small non-zero joint velocities; spec X5).
        self._joint_cmd = self._joint_command(np.zeros(ACTION_DIM))[0]
        d.ctrl[ix.arm_actuators] = self._joint_cmd[:7]
        d.ctrl[ix.finger_actuator] = self._joint_cmd[7]
        mujoco.mj_forward(m, d)
        self._step = 0
        self._needs_reset = False
        self._prev_finger = self._finger_angle()
        frame = self._make_frame()
        self._stacker.reset()
        obs = self._observe(frame)
        terms = self._reward_terms(frame)
        info = self._info(frame, terms, zeroed=np.zeros(4, bool))
        info['seed'] = self._episode_seed
        info['domain_randomization'] = dr_info
        return obs, info

    def step(self, action) -> Tuple[Dict[str, np.ndarray], float, bool, bool, Dict[str, Any]]:
        """Apply the 5-D agent action for one 0.05 s control period.

        action in [-1, 1]^5 (values outside are clipped, NaN/inf raise InvalidAction and leave the
        physics untouched): [vx, vy, vz] x 0.07 m/s (world), yaw x 1 rad/s, gripper > 0 closes.
        """
        self._check_open()
        if self._needs_reset:
            raise RuntimeError('call reset() before step() (episode over or not started)')
        a = check_finite(action, 'action')
        if a.shape != (ACTION_DIM,):
            raise InvalidAction(f'action must have shape ({ACTION_DIM},), got {a.shape}')
        a = np.clip(a, -1.0, 1.0)
        cmd, zeroed = self._joint_command(a)
        frame, terms = self._advance(cmd)
        obs = self._observe(frame)
        truncated = self._step >= self.config.episode_steps
        if truncated:
            self._needs_reset = True
        info = self._info(frame, terms, zeroed)
        return obs, float(terms['staged']), False, truncated, info

    def step_joints(self, arm_velocity_rps, gripper_ctrl: float) -> Tuple[Dict[str, np.ndarray], Dict[str, float]]:
        """One 0.05 s control period at the actuator level (what ros2_control would write): 7 arm joint
        velocities (rad/s, the integrated-velocity actuators) and the gripper actuator command (+-255,
        > 0 closes). No workspace zeroing and no Cartesian controller: whatever drives the joints (the
        hardware emulator's position controller under a Servo stand-in) owns those. Never truncates.
        Returns (un-stacked frame, reward terms with the contact-based ground-truth sparse_success)."""
        self._check_open()
        if self._episode_seed is None:
            raise RuntimeError('call reset() before step_joints()')
        qd = check_finite(arm_velocity_rps, 'arm_velocity_rps')
        if qd.shape != (7,):
            raise InvalidAction(f'arm_velocity_rps must have shape (7,), got {qd.shape}')
        lo, hi = GRIPPER_CTRL_RANGE
        return self._advance(np.concatenate([qd, [float(np.clip(gripper_ctrl, lo, hi))]]))

    def _advance(self, cmd: np.ndarray) -> Tuple[Dict[str, np.ndarray], Dict[str, float]]:
        """Hold the 8-D joint-level command for one control period; the new frame and reward terms."""
        m, d, ix = self.model, self.data, self.index
        self._joint_cmd = cmd
        d.ctrl[ix.arm_actuators] = cmd[:7]
        d.ctrl[ix.finger_actuator] = cmd[7]
        mujoco.mj_step(m, d, nstep=self._substeps)
        if not np.all(np.isfinite(d.qpos)):
            raise FloatingPointError('physics diverged (non-finite qpos)')
        self._step += 1
        frame = self._make_frame()
        return frame, self._reward_terms(frame)

    def arm_position_targets(self) -> np.ndarray:
        """The integrated-velocity actuators' current position targets (rad, 7): what a position
        controller holds when no new command arrives."""
        return np.array(self.data.act[self.index.arm_actuators], np.float64)

    def render_view(self, camera: str, width: int, height: int, fovy_deg: float) -> np.ndarray:
        """An HxWx3 uint8 image of a basket camera with another vertical field of view and aspect
        (a driver's full frame instead of the benchmark's square crop); the model is left as it was."""
        cam = self.index.cameras[camera]
        key = ('view', width, height)
        r = self._views.get(key)
        if r is None:
            r = self._views[key] = mujoco.Renderer(self.model, height, width)
        old = float(self.model.cam_fovy[cam])
        self.model.cam_fovy[cam] = fovy_deg
        try:
            r.update_scene(self.data, camera=cam)
            return r.render().copy()
        finally:
            self.model.cam_fovy[cam] = old

    def raw_frame(self) -> Dict[str, np.ndarray]:
        """The current un-stacked observation frame (copies; benchmark keys and units)."""
        return {k: np.array(v, copy=True) for k, v in self._frame.items()}

    def render_camera(self, camera: str = S.VIDEO_CAMERA, size: Optional[int] = None) -> np.ndarray:
        """An HxWx3 uint8 image from any model camera (e.g. the benchmark's video camera)."""
        size = size or self.config.image_size
        r = self._get_renderer(size)
        name = camera if camera == S.VIDEO_CAMERA else S.CAMERA_PREFIX + camera
        r.update_scene(self.data, camera=name)
        return r.render().copy()

    def close(self) -> None:
        if self._renderer is not None:
            try:
                self._renderer.close()
            except Exception:  # noqa: BLE001 - EGL teardown errors must not mask the caller's
                pass
            self._renderer = None
        for r in getattr(self, '_views', {}).values():
            try:
                r.close()
            except Exception:  # noqa: BLE001
                pass
        self._views = {}
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    # --- reset helpers ---------------------------------------------------------------------------
    def _place_robot(self, rng: np.random.Generator) -> None:
        """TCP uniform in the §B.9 box, pointing down with yaw in [-pi/4, pi/4] (moma IK stand-in)."""
        m, d, ix = self.model, self.data, self.index
        d.xfrc_applied[ix.robot_bodies, :3] = -m.opt.gravity * m.body_mass[ix.robot_bodies, None]
        best = None
        for attempt in range(10):
            pos = rng.uniform(TCP_POSITION_LOW_M, TCP_POSITION_HIGH_M)
            yaw = rng.uniform(*TCP_YAW_RANGE_RAD)
            start = np.array(self.controller.q_ref)
            if attempt:
                start = start + rng.normal(0.0, 0.2, size=7)
            q, err = pose_ik(m, d, ix.pinch_site, ix.arm_qpos, ix.arm_dof, ix.arm_joint_range,
                             pos, down_rotation(yaw), start)
            if best is None or err < best[1]:
                best = (q, err)
            wrist = -q[6]
            if err < 1e-4 and abs(wrist) < math.pi / 2:
                break
        q = best[0]
        d.qpos[ix.arm_qpos] = q
        d.qvel[:] = 0.0
        d.act[ix.arm_actuators] = q        # integrated-velocity actuators hold the pose (moma)
        d.act[ix.finger_actuator] = 0.0    # gripper open
        d.ctrl[:] = 0.0
        mujoco.mj_forward(m, d)

    def _place_props(self, rng: np.random.Generator) -> None:
        """PropPlacer: uniform position (z = 0.12 m) and orientation, rejection-sampled one prop at
        a time against everything already placed (robot and basket included)."""
        m, d, ix = self.model, self.data, self.index
        for k, colour in enumerate(OBJECT_COLOURS):        # park all props far above the cell
            a = ix.prop_qpos[colour]
            d.qpos[a:a + 7] = [0.0, 3.0 * (k - 1), 5.0, 1.0, 0.0, 0.0, 0.0]
        for colour in OBJECT_COLOURS:
            a = ix.prop_qpos[colour]
            mask = self._masks[colour]
            for _ in range(PROP_PLACEMENT_ATTEMPTS):
                pos = rng.uniform(PROP_POSITION_LOW_M, PROP_POSITION_HIGH_M)
                quat = _uniform_quaternion(rng)
                d.qpos[a:a + 3] = pos
                d.qpos[a + 3:a + 7] = quat
                mujoco.mj_forward(m, d)
                if not self._touching(self._contact_pairs(max_dist=0.0), mask, self._masks['any']):
                    break
        d.qvel[:] = 0.0
        mujoco.mj_forward(m, d)

    def _settle(self) -> None:
        """Let the dropped props come to rest with the robot held static (PropPlacer settle)."""
        m, d, ix = self.model, self.data, self.index
        if self.config.settle_max_s <= 0:
            return
        hold_q = d.qpos[ix.robot_qpos].copy()
        hold_act = d.act.copy()
        dofs = np.concatenate([np.arange(ix.prop_dof[c], ix.prop_dof[c] + 6) for c in OBJECT_COLOURS])
        chunk = max(1, int(round(0.01 / m.opt.timestep)))
        t_end = d.time + self.config.settle_max_s
        while d.time < t_end:
            mujoco.mj_step(m, d, nstep=chunk)
            d.qpos[ix.robot_qpos] = hold_q
            d.qvel[ix.robot_dof] = 0.0
            d.act[:] = hold_act
            if np.max(np.abs(d.qvel[dofs])) < SETTLE_QVEL_TOL and np.max(np.abs(d.qacc[dofs])) < SETTLE_QACC_TOL:
                break
        d.qvel[ix.robot_dof] = 0.0
        mujoco.mj_forward(m, d)

    # --- control ---------------------------------------------------------------------------------
    def _joint_command(self, action: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Agent action -> 8-D joint-level command [7 arm joint velocities rad/s, gripper +-255]."""
        d, ix = self.data, self.index
        cmd4 = np.array([action[0] * MAX_LINEAR_SPEED_MPS, action[1] * MAX_LINEAR_SPEED_MPS,
                         action[2] * MAX_LINEAR_SPEED_MPS, action[3] * MAX_YAW_RATE_RPS])
        cmd4, zeroed = workspace_zeroing(cmd4, d.site_xpos[ix.pinch_site], float(d.qpos[ix.arm_qpos[6]]),
                                         enforce_box=self.config.enforce_workspace,
                                         enforce_wrist=self.config.enforce_wrist_limit)
        qd = self.controller.command(d, cmd4[:3], float(cmd4[3]))
        gripper = GRIPPER_CTRL_RANGE[1] if action[4] > 0 else GRIPPER_CTRL_RANGE[0]
        return np.concatenate([qd, [gripper]]), zeroed

    # --- observations ----------------------------------------------------------------------------
    def _contact_pairs(self, max_dist: float = CONTACT_MARGIN_M) -> Tuple[np.ndarray, np.ndarray]:
        """Geom ids (geom1, geom2) of the current contacts with dist <= max_dist."""
        d = self.data
        n = d.ncon
        if n == 0:
            return _EMPTY, _EMPTY
        keep = d.contact.dist[:n] <= max_dist
        return d.contact.geom1[:n][keep], d.contact.geom2[:n][keep]

    @staticmethod
    def _touching(pairs, a_mask: np.ndarray, b_mask: np.ndarray) -> bool:
        """True if some contact joins a geom of a_mask with a geom of b_mask (bool masks over ngeom)."""
        g1, g2 = pairs
        if len(g1) == 0:
            return False
        return bool(np.any((a_mask[g1] & b_mask[g2]) | (a_mask[g2] & b_mask[g1])))

    def _grasp_flag(self, pairs) -> int:
        """Robotiq object-detection status as moma emulates it: both fingertip pads touch something
        other than each other, and the finger command is non-trivial (spec §B.6)."""
        m = self._masks
        both = (self._touching(pairs, m['pad_right'], m['not_pad'])
                and self._touching(pairs, m['pad_left'], m['not_pad']))
        if not both:
            return GRASP_NONE
        ctrl = float(self.data.ctrl[self.index.finger_actuator])
        if abs(ctrl) < GRASP_CTRL_TOLERANCE:
            return GRASP_NONE
        return GRASP_INWARD if ctrl > 0 else GRASP_OUTWARD

    def _finger_angle(self) -> float:
        lo, hi = self.index.finger_range
        pos = float(self.data.sensordata[self.index.finger_sensor_adr])
        return float(np.round(np.clip((pos - lo) / (hi - lo) * FINGER_SCALE, 0.0, FINGER_SCALE)))

    def _site_pose(self, site: int) -> np.ndarray:
        d = self.data
        return np.concatenate([d.site_xpos[site], quat_from_mat(d.site_xmat[site])])

    def _make_frame(self) -> Dict[str, np.ndarray]:
        m, d, ix = self.model, self.data, self.index
        f32 = lambda x: np.asarray(x, np.float32).copy()  # noqa: E731
        frame: Dict[str, np.ndarray] = {}
        finger = self._finger_angle()
        frame['action/environment'] = f32(self._joint_cmd)
        self._pairs = self._contact_pairs()
        frame['gripper/grasp'] = f32([self._grasp_flag(self._pairs)])
        frame['gripper/joints/angle'] = f32([finger])
        frame['gripper/joints/velocity'] = f32([finger - self._prev_finger])
        self._prev_finger = finger
        pinch = self._site_pose(ix.pinch_site)
        pinch32 = f32(pinch)
        for colour in ('blue', 'green', 'red'):
            b = ix.prop_bodies[colour]
            pose = f32(np.concatenate([d.xpos[b], quat_from_mat(d.xmat[b])]))
            frame[f'rgb30_{colour}/abs_pose'] = pose
            frame[f'rgb30_{colour}/to_pinch'] = pose - pinch32
        frame['sawyer/joints/angle'] = f32(d.qpos[ix.arm_qpos])
        frame['sawyer/joints/torque'] = f32(d.sensordata[ix.joint_torque_adr])
        frame['sawyer/joints/velocity'] = f32(d.qvel[ix.arm_dof])
        frame['sawyer/pinch/pose'] = pinch32
        frame['sawyer/tcp/pose'] = f32(self._site_pose(ix.wrist_site))
        vel = np.zeros(6)
        mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_SITE, ix.wrist_site, vel, 0)
        frame['sawyer/tcp/velocity'] = f32(np.concatenate([vel[3:], vel[:3]]))
        frame['wrist/force'] = f32(d.sensordata[ix.ft_force_adr:ix.ft_force_adr + 3])
        frame['wrist/torque'] = f32(d.sensordata[ix.ft_torque_adr:ix.ft_torque_adr + 3])
        if self.config.render_images:
            r = self._get_renderer(self.config.image_size)
            for cam in self.config.cameras:
                r.update_scene(d, camera=ix.cameras[cam])
                frame[image_key(cam)] = r.render().copy()
        self._frame = frame
        return frame

    def _observe(self, frame: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        return self._stacker.push(frame)

    def _reward_terms(self, frame: Dict[str, np.ndarray]) -> Dict[str, float]:
        terms = R.frame_reward_terms(frame)
        m, pairs = self._masks, self._pairs
        touches_blue = self._touching(pairs, m['red'], m['blue'])
        touches_ground = self._touching(pairs, m['red'], m['ground'])
        touches_robot = self._touching(pairs, m['red'], m['robot'])
        success = R.sparse_success_contacts(frame['rgb30_red/abs_pose'][:3], frame['rgb30_blue/abs_pose'][:3],
                                            touches_blue, touches_ground, touches_robot)
        terms['sparse_success'] = float(success)
        return {k: terms[k] for k in REWARD_TERMS}

    def _info(self, frame, terms, zeroed) -> Dict[str, Any]:
        return {
            'reward_terms': dict(terms),
            'success': bool(terms['sparse_success'] > 0.5),
            'frame': {k: np.array(v, copy=True) for k, v in frame.items()},
            'triplet': self._triplet,
            'objects': self._objects,
            'step': self._step,
            'sim_time_s': self.sim_time_s,
            'workspace_zeroed': np.asarray(zeroed, bool).copy(),
            'episode_seed': self._episode_seed,
        }

    def _get_renderer(self, size: int) -> mujoco.Renderer:
        if self._renderer is not None and (self._renderer.height, self._renderer.width) != (size, size):
            self._renderer.close()
            self._renderer = None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, size, size)
        return self._renderer

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError('environment is closed')




def _uniform_quaternion(rng: np.random.Generator) -> np.ndarray:
    """Uniform random rotation (Shoemake), w >= 0."""
    u1, u2, u3 = rng.uniform(size=3)
    q = np.array([math.sqrt(u1) * math.cos(2 * math.pi * u3), math.sqrt(1 - u1) * math.sin(2 * math.pi * u2),
                  math.sqrt(1 - u1) * math.cos(2 * math.pi * u2), math.sqrt(u1) * math.sin(2 * math.pi * u3)])
    return -q if q[0] < 0 else q


def make_env(**overrides) -> RgbStackingEnv:
    """RgbStackingEnv(SimConfig(**overrides)) - convenience for scripts and tests."""
    return RgbStackingEnv(SimConfig(**overrides))


__all__ = ['SimConfig', 'RgbStackingEnv', 'make_env', 'PRESETS', 'DomainRandomizationConfig']
