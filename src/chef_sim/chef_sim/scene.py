"""The RGB-Stacking cell as a MuJoCo model, composed from the benchmark's own assets.

Composition follows `rgb_stacking/task.py` step by step, with the moma / manipulation classes loaded
from the installed wheels through `dm_control.mjcf`:
  empty.Arena (ground plane, light) + RGBBasket attached at (0.60, 0, 0.0498) m (its three cameras
  come with it) + Sawyer (integrated-velocity actuators) <- RobotiqFTS300 <- Robotiq2F85, a video
  camera `main_camera`, three RgbObjectProp free bodies `rgb_object_{red,green,blue}`, and the
  contype/conaffinity body exclusions of `rgb_stacking.environment`.
The composed MJCF then goes through `mujoco.MjSpec` for what the benchmark does in Python callbacks
or that the stand-in needs:
  * the integrated-velocity actuators' activation clip (moma's `after_substep`) becomes MuJoCo's
    `actlimited`/`actrange` (arm: joint limits, gripper: [0, 255]) - same clip, done in C;
  * all 152 RGB-object meshes are assets of the one model; a prop changes shape by pointing its two
    geoms at another mesh (`ObjectCatalog.assign`), so a new triplet needs no recompilation;
  * rendering settings (shadows, MSAA, floor reflection) and optional render proxies: decimated,
    massless, non-colliding copies of the robot's high-poly meshes, drawn instead of the originals
    (moved to geom group 3, which is not rendered). Physics is untouched (test_scene.py checks it).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import threading
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import mujoco
import numpy as np

from chef_contract.spec import (
    ARM_JOINT_NAMES, BASKET_CENTER_M, CAMERA_NAMES, OBJECT_COLOURS, PHYSICS_TIMESTEP_S, TEST_TRIPLETS,
)
from chef_sim import assets as A
from chef_sim.meshes import cluster_decimate, read_binary_stl

ROBOT = 'robot0'
GRIPPER_PREFIX = f'{ROBOT}/robotiq_fts300/robotiq_2f85/'
FTS_PREFIX = f'{ROBOT}/robotiq_fts300/'
PINCH_SITE = GRIPPER_PREFIX + 'pinch_site'          # benchmark 'sawyer/pinch/pose' (gripper TCP)
WRIST_SITE = f'{ROBOT}/wrist_site'                   # benchmark 'sawyer/tcp/pose' (spec X4)
FT_FORCE_SENSOR = FTS_PREFIX + 'ft_sensor_force'
FT_TORQUE_SENSOR = FTS_PREFIX + 'ft_sensor_torque'
FINGER_POS_SENSOR = GRIPPER_PREFIX + 'fingers_pos'
FINGER_ACTUATOR = GRIPPER_PREFIX + 'fingers_actuator'
FINGER_DRIVER_JOINT = GRIPPER_PREFIX + 'left_driver_joint'
PAD_GEOMS = (GRIPPER_PREFIX + 'reinforced_right_fingertip_geom',
             GRIPPER_PREFIX + 'reinforced_left_fingertip_geom')
CAMERA_PREFIX = 'base/'                              # the basket's namespace
VIDEO_CAMERA = 'main_camera'
COMPILED_TRIPLET: Tuple[str, str, str] = TEST_TRIPLETS['rgb_test_triplet1']   # props as compiled
CATALOG_SHELF = 'rgb_catalog_shelf'
CATALOG_COLLISION_BIT = 1 << 20                      # collision bit used by the catalog shelf only
SAWYER_JOINT_LIMITS_RAD = ((-3.0503, -3.8095, -3.0426, -3.0439, -2.9761, -2.9761, -4.7124),
                           (3.0503, 2.2736, 3.0426, 3.0439, 2.9761, 2.9761, 4.7124))
GRIPPER_ACT_RANGE = (0.0, 255.0)


def prop_body(colour: str) -> str:
    return f'rgb_object_{colour}/'


def prop_geoms(colour: str) -> Tuple[str, str]:
    """(visual, collision) geom names of a prop, as RgbObjectProp names them."""
    p = prop_body(colour)
    return (f'{p}mesh_rgb_object_{colour}_00_visual', f'{p}mesh_rgb_object_{colour}_00_collision')


def catalog_mesh(object_id: str) -> str:
    return f'rgb_mesh_{object_id}'


@dataclass(frozen=True)
class SceneOptions:
    """Everything that changes the compiled model (cache key)."""

    physics_timestep_s: float = PHYSICS_TIMESTEP_S
    noslip_iterations: int = 5            # dm_control composer arena default (faithful)
    shadows: bool = False
    msaa: bool = False
    reflections: bool = False             # the ground plane's 0.2 reflectance (one extra render pass)
    render_proxies: bool = True
    proxy_cell_m: float = 0.008           # m, vertex-clustering grid of the render proxies
    proxy_min_faces: int = 500            # meshes with more triangles than this get a proxy
    offscreen_size_px: int = 256          # offscreen framebuffer (>= the largest rendered image)


# ------------------------------------------------------------------------------------------------
_COMPOSE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def compose_benchmark_mjcf() -> Tuple[str, Dict[str, bytes]]:
    """MJCF text + assets of the cell, composed with the benchmark's moma classes (cached)."""
    with _COMPOSE_LOCK:
        from dm_control import mjcf  # noqa: F401  (imported for its side effects on moma)
        from dm_robotics.manipulation.props.rgb_objects import rgb_object
        from dm_robotics.manipulation.standard_cell import rgb_basket
        from dm_robotics.moma.models.arenas import empty
        from dm_robotics.moma.models.end_effectors.robot_hands import robotiq_2f85
        from dm_robotics.moma.models.end_effectors.wrist_sensors import robotiq_fts300
        from dm_robotics.moma.models.robots.robot_arms import sawyer, sawyer_constants
        from dm_robotics.moma.utils import mujoco_collisions

        arena = empty.Arena()
        arena.mjcf_model.size.nconmax = 5000
        arena.mjcf_model.size.njmax = 5000
        basket = rgb_basket.RGBBasket()
        site = arena.mjcf_model.worldbody.add('site', pos=BASKET_CENTER_M, rgba='0 0 0 0', size='0.01')
        arena.attach(basket, site)

        arm = sawyer.Sawyer(name=ROBOT, actuation=sawyer_constants.Actuation.INTEGRATED_VELOCITY)
        gripper = robotiq_2f85.Robotiq2F85()
        wrist_ft = robotiq_fts300.RobotiqFTS300()
        wrist_ft.attach(gripper)          # moma.robot.standard_compose
        arm.attach(wrist_ft)
        arena.attach(arm)

        arena.mjcf_model.worldbody.add('camera', name=VIDEO_CAMERA, pos='1.4 0.0 0.45',
                                       quat='0.541  0.455  0.456  0.541', fovy='45')
        colours = {'red': [1, 0, 0, 1], 'green': [0, 1, 0, 1], 'blue': [0, 0, 1, 1]}
        for colour, oid in zip(OBJECT_COLOURS, COMPILED_TRIPLET):
            prop = rgb_object.RgbObjectProp(obj_id=oid, color=colours[colour],
                                            name=f'rgb_object_{colour}')
            arena.add_free_entity(prop)
        mujoco_collisions.exclude_bodies_based_on_contype_conaffinity(arena.mjcf_model)
        return arena.mjcf_model.to_xml_string(), dict(arena.mjcf_model.get_assets())


def _catalog_assets() -> Dict[str, bytes]:
    return {f'{catalog_mesh(oid)}.stl': path.read_bytes() for oid, path in A.object_mesh_files().items()}


def build_spec(options: SceneOptions, triplet: Optional[Tuple[str, str, str]] = None) -> mujoco.MjSpec:
    """The cell as an MjSpec (not yet compiled) with props of object ids `triplet` (red, green,
    blue; default COMPILED_TRIPLET)."""
    triplet = tuple(triplet or COMPILED_TRIPLET)
    xml, base_assets = compose_benchmark_mjcf()
    assets = dict(base_assets)
    spec = mujoco.MjSpec.from_string(xml, assets)

    spec.option.timestep = options.physics_timestep_s
    spec.option.noslip_iterations = options.noslip_iterations

    # moma's after_substep clips of the integrated-velocity activations, done by MuJoCo itself.
    for i, name in enumerate(ARM_JOINT_NAMES):
        act = spec.actuator(f'{ROBOT}/j{i}')
        act.actlimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.actrange = [SAWYER_JOINT_LIMITS_RAD[0][i], SAWYER_JOINT_LIMITS_RAD[1][i]]
    finger = spec.actuator(FINGER_ACTUATOR)
    finger.actlimited = mujoco.mjtLimited.mjLIMITED_TRUE
    finger.actrange = list(GRIPPER_ACT_RANGE)

    # All 152 object meshes, same mesh settings as RgbObjectProp's own mesh assets.
    template = spec.mesh(spec.geom(prop_geoms('red')[0]).meshname)
    cat_assets = _catalog_assets()
    assets.update(cat_assets)
    for oid in A.object_mesh_files():
        mesh = spec.add_mesh(name=catalog_mesh(oid), file=f'{catalog_mesh(oid)}.stl')
        mesh.scale = template.scale
        mesh.inertia = template.inertia
        mesh.maxhullvert = template.maxhullvert
    old_meshes = set()
    for colour, oid in zip(OBJECT_COLOURS, triplet):
        for gname in prop_geoms(colour):
            geom = spec.geom(gname)
            old_meshes.add(geom.meshname)
            geom.meshname = catalog_mesh(oid)
    for name in old_meshes:
        spec.delete(spec.mesh(name))
    # MuJoCo builds a mesh's convex hull and contact polygons only for meshes that some colliding
    # geom uses. A static shelf far below the cell holds one geom per object on a collision bit
    # (CATALOG_COLLISION_BIT) that no other geom has, so every object mesh gets them and never
    # touches anything; its geoms are in group 3 (not drawn).
    shelf = spec.worldbody.add_body(name=CATALOG_SHELF, pos=[0.0, 0.0, -10.0])
    for oid in A.object_mesh_files():
        shelf.add_geom(name=f'{CATALOG_SHELF}/{oid}', type=mujoco.mjtGeom.mjGEOM_MESH,
                       meshname=catalog_mesh(oid), contype=CATALOG_COLLISION_BIT,
                       conaffinity=CATALOG_COLLISION_BIT, mass=0.0, density=0.0, group=3)

    # Rendering quality (drawing only).
    spec.visual.quality.shadowsize = 4096 if options.shadows else 0
    spec.visual.quality.offsamples = 4 if options.msaa else 0
    spec.visual.global_.offwidth = max(options.offscreen_size_px, 640)
    spec.visual.global_.offheight = max(options.offscreen_size_px, 480)
    if not options.reflections:
        for mat in spec.materials:
            mat.reflectance = 0.0
    if options.render_proxies:
        _add_render_proxies(spec, assets, options.proxy_cell_m, options.proxy_min_faces)
    spec.assets = assets
    return spec


def _add_render_proxies(spec: mujoco.MjSpec, assets: Dict[str, bytes], cell_m: float,
                        min_faces: int) -> None:
    made: Dict[str, str] = {}
    for geom in list(spec.geoms):
        if geom.type != mujoco.mjtGeom.mjGEOM_MESH or geom.group > 2 or not geom.name.startswith(ROBOT):
            continue
        mesh = spec.mesh(geom.meshname)
        data = assets.get(mesh.file)
        if data is None:
            continue
        tri = read_binary_stl(data)
        if len(tri) <= min_faces:
            continue
        proxy = made.get(mesh.name)
        if proxy is None:
            verts, faces = cluster_decimate(tri * np.asarray(mesh.scale), cell_m)
            proxy = f'{mesh.name}_render_proxy'
            spec.add_mesh(name=proxy, uservert=verts.astype(np.float32).ravel().tolist(),
                          userface=faces.ravel().tolist())
            made[mesh.name] = proxy
        geom.parent.add_geom(
            name=f'{geom.name}_render_proxy', type=mujoco.mjtGeom.mjGEOM_MESH, meshname=proxy,
            contype=0, conaffinity=0, mass=0.0, density=0.0, pos=geom.pos, quat=geom.quat,
            material=geom.material, rgba=geom.rgba, group=geom.group)
        geom.group = 3      # the original stays for physics; group 3 is not drawn


# ------------------------------------------------------------------------------------------------
@dataclass
class SceneIndex:
    """Ids and addresses the env needs, resolved once per compiled model."""

    arm_qpos: np.ndarray          # (7,) qpos addresses of right_j0..6
    arm_dof: np.ndarray           # (7,) dof addresses
    arm_actuators: np.ndarray     # (7,)
    arm_joint_range: np.ndarray   # (7, 2) rad
    finger_actuator: int
    finger_qpos: int              # left_driver_joint qpos address (moma's gripper joint)
    finger_range: Tuple[float, float]
    finger_sensor_adr: int
    ft_force_adr: int
    ft_torque_adr: int
    joint_torque_adr: np.ndarray  # (7,) sensordata address of each joint's torque z component
    pinch_site: int
    wrist_site: int
    prop_bodies: Dict[str, int]
    prop_qpos: Dict[str, int]     # free-joint qpos address (x y z qw qx qy qz)
    prop_dof: Dict[str, int]
    prop_geoms: Dict[str, Tuple[int, int]]   # (visual, collision)
    pad_geoms: Tuple[int, int]
    robot_bodies: np.ndarray      # every body of robot0 (gravity compensation)
    robot_geom_mask: np.ndarray   # (ngeom,) bool: geom name starts with 'robot'
    ground_geom_mask: np.ndarray  # (ngeom,) bool: geom name starts with 'work_surface' or 'ground'
    cameras: Dict[str, int]
    robot_qpos: np.ndarray        # every qpos address of robot0 joints (for holding it static)
    robot_dof: np.ndarray


def _id(model, kind, name) -> int:
    i = mujoco.mj_name2id(model, kind, name)
    if i < 0:
        raise KeyError(f'{name!r} not found in the compiled cell model')
    return i


def index_model(model: mujoco.MjModel) -> SceneIndex:
    J, B, G, S = mujoco.mjtObj.mjOBJ_JOINT, mujoco.mjtObj.mjOBJ_BODY, mujoco.mjtObj.mjOBJ_GEOM, mujoco.mjtObj.mjOBJ_SITE
    joints = [_id(model, J, f'{ROBOT}/{n}') for n in ARM_JOINT_NAMES]
    acts = [_id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, f'{ROBOT}/j{i}') for i in range(7)]
    sensors = [_id(model, mujoco.mjtObj.mjOBJ_SENSOR, f'{ROBOT}/j{i}_torque') for i in range(7)]
    finger_joint = _id(model, J, FINGER_DRIVER_JOINT)
    names = [mujoco.mj_id2name(model, G, g) or '' for g in range(model.ngeom)]
    body_names = [mujoco.mj_id2name(model, B, b) or '' for b in range(model.nbody)]
    robot_joints = [j for j in range(model.njnt)
                    if (mujoco.mj_id2name(model, J, j) or '').startswith(ROBOT + '/')]
    props = {c: _id(model, B, prop_body(c)) for c in OBJECT_COLOURS}
    prop_jnt = {c: int(model.body_jntadr[b]) for c, b in props.items()}
    return SceneIndex(
        arm_qpos=np.array([model.jnt_qposadr[j] for j in joints]),
        arm_dof=np.array([model.jnt_dofadr[j] for j in joints]),
        arm_actuators=np.array(acts),
        arm_joint_range=np.array([model.jnt_range[j] for j in joints]),
        finger_actuator=_id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, FINGER_ACTUATOR),
        finger_qpos=int(model.jnt_qposadr[finger_joint]),
        finger_range=(float(model.jnt_range[finger_joint][0]), float(model.jnt_range[finger_joint][1])),
        finger_sensor_adr=int(model.sensor_adr[_id(model, mujoco.mjtObj.mjOBJ_SENSOR, FINGER_POS_SENSOR)]),
        ft_force_adr=int(model.sensor_adr[_id(model, mujoco.mjtObj.mjOBJ_SENSOR, FT_FORCE_SENSOR)]),
        ft_torque_adr=int(model.sensor_adr[_id(model, mujoco.mjtObj.mjOBJ_SENSOR, FT_TORQUE_SENSOR)]),
        joint_torque_adr=np.array([model.sensor_adr[s] + 2 for s in sensors]),
        pinch_site=_id(model, S, PINCH_SITE),
        wrist_site=_id(model, S, WRIST_SITE),
        prop_bodies=props,
        prop_qpos={c: int(model.jnt_qposadr[j]) for c, j in prop_jnt.items()},
        prop_dof={c: int(model.jnt_dofadr[j]) for c, j in prop_jnt.items()},
        prop_geoms={c: tuple(_id(model, G, n) for n in prop_geoms(c)) for c in OBJECT_COLOURS},
        pad_geoms=tuple(_id(model, G, n) for n in PAD_GEOMS),
        robot_bodies=np.array([b for b, n in enumerate(body_names) if n.startswith(ROBOT + '/')]),
        robot_geom_mask=np.array([n.startswith('robot') for n in names]),
        ground_geom_mask=np.array([n.startswith('work_surface') or n.startswith('ground') for n in names]),
        cameras={c: _id(model, mujoco.mjtObj.mjOBJ_CAMERA, CAMERA_PREFIX + c) for c in CAMERA_NAMES},
        robot_qpos=np.array([model.jnt_qposadr[j] for j in robot_joints]),
        robot_dof=np.array([model.jnt_dofadr[j] for j in robot_joints]),
    )


# ------------------------------------------------------------------------------------------------
class ObjectCatalog:
    """Per-object compiled geometry and inertia of all 152 RGB-objects, to re-shape props in place.

    The catalog model holds one free body per object with the same two geoms (visual: 0.2 kg,
    collision: massless, condim 6) as a prop of the cell, compiled with the cell's compiler settings.
    `assign` copies what MuJoCo derives from the mesh (geom frame offset, size, bounding volumes,
    body mass, inertia and inertial frame, body BVH) into a prop of the cell and re-runs mj_setConst,
    which gives the same model as compiling the cell with that object (test_scene.py checks it).
    """

    def __init__(self, model: mujoco.MjModel, ids):
        self.model = model
        self.ids = tuple(ids)
        self._index = {oid: i for i, oid in enumerate(self.ids)}

    @classmethod
    def from_spec(cls, spec: mujoco.MjSpec) -> 'ObjectCatalog':
        """Compile the catalog with the props' geom settings and the cell's compiler settings."""
        vis, col = (spec.geom(n) for n in prop_geoms('red'))
        template = spec.mesh(vis.meshname)
        cat = mujoco.MjSpec()
        for attr in ('boundmass', 'boundinertia', 'balanceinertia', 'settotalmass',
                     'inertiafromgeom', 'inertiagrouprange', 'alignfree', 'fitaabb'):
            setattr(cat.compiler, attr, getattr(spec.compiler, attr))
        ids = list(A.object_mesh_files())
        assets = _catalog_assets()
        for oid in ids:
            mesh = cat.add_mesh(name=catalog_mesh(oid), file=f'{catalog_mesh(oid)}.stl')
            mesh.scale = template.scale
            mesh.inertia = template.inertia
            mesh.maxhullvert = template.maxhullvert
        for oid in ids:
            body = cat.worldbody.add_body(name=oid)
            body.add_freejoint()
            for src, suffix in ((vis, 'visual'), (col, 'collision')):
                body.add_geom(
                    name=f'{oid}_{suffix}', type=src.type, meshname=catalog_mesh(oid),
                    pos=src.pos, quat=src.quat, mass=src.mass, density=src.density,
                    typeinertia=src.typeinertia, contype=src.contype, conaffinity=src.conaffinity,
                    group=src.group, condim=src.condim, margin=src.margin, gap=src.gap)
        cat.assets = assets
        return cls(cat.compile(), ids)

    def half_extents(self, object_id: str) -> np.ndarray:
        """Axis-aligned half extents (m) of the object's mesh in its own frame."""
        g = self._geoms(object_id)[1]
        return np.asarray(self.model.geom_aabb[g][3:], np.float64).copy()

    def _geoms(self, object_id: str) -> Tuple[int, int]:
        b = self._index[object_id] + 1
        adr = int(self.model.body_geomadr[b])
        return adr, adr + 1

    def assign(self, model: mujoco.MjModel, data: mujoco.MjData, index: SceneIndex,
               colour: str, object_id: str) -> None:
        """Give prop `colour` of `model` the shape and inertia of `object_id` (then call set_const)."""
        if object_id not in self._index:
            raise KeyError(f'unknown RGB-object id {object_id!r}')
        cm = self.model
        cb = self._index[object_id] + 1
        body = index.prop_bodies[colour]
        mesh_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_MESH, catalog_mesh(object_id))
        for dst, src in zip(index.prop_geoms[colour], self._geoms(object_id)):
            model.geom_dataid[dst] = mesh_id
            for field in ('geom_pos', 'geom_quat', 'geom_size', 'geom_rbound', 'geom_aabb'):
                getattr(model, field)[dst] = getattr(cm, field)[src]
        for field in ('body_mass', 'body_inertia', 'body_ipos', 'body_iquat'):
            getattr(model, field)[body] = getattr(cm, field)[cb]
        n = int(model.body_bvhnum[body])
        if n != int(cm.body_bvhnum[cb]):
            raise RuntimeError('prop bounding-volume hierarchy differs from the catalog')
        a, ca = int(model.body_bvhadr[body]), int(cm.body_bvhadr[cb])
        model.bvh_aabb[a:a + n] = cm.bvh_aabb[ca:ca + n]


def set_const(model: mujoco.MjModel, data: mujoco.MjData) -> None:
    """Recompute the model constants that depend on masses (after `ObjectCatalog.assign`)."""
    mujoco.mj_setConst(model, data)


# ------------------------------------------------------------------------------------------------
@dataclass
class CompiledScene:
    model: mujoco.MjModel
    index: SceneIndex
    catalog: ObjectCatalog


_SCENE_CACHE: Dict[SceneOptions, CompiledScene] = {}
_SCENE_LOCK = threading.Lock()


def _cache_key(options: SceneOptions) -> str:
    """Hash of everything the compiled model depends on: options, versions, this code."""
    import importlib.metadata as md
    from pathlib import Path
    h = hashlib.sha256()
    h.update(repr(dataclasses.astuple(options)).encode())
    for dist in ('mujoco', 'dm-control', 'dm-robotics-moma', 'dm-robotics-manipulation'):
        try:
            h.update(f'{dist}={md.version(dist)}'.encode())
        except md.PackageNotFoundError:
            h.update(dist.encode())
    for module in ('scene.py', 'meshes.py', 'assets.py'):
        h.update((Path(__file__).parent / module).read_bytes())
    return h.hexdigest()[:20]


def _load_cached(key: str):
    d = A.env_cache_dir()
    cell, cat, ids = d / f'cell_{key}.mjb', d / f'catalog_{key}.mjb', d / f'catalog_{key}.ids'
    if not (cell.is_file() and cat.is_file() and ids.is_file()):
        return None
    try:
        return (mujoco.MjModel.from_binary_path(str(cell)),
                ObjectCatalog(mujoco.MjModel.from_binary_path(str(cat)), ids.read_text().split()))
    except Exception:  # noqa: BLE001 - a truncated or stale cache file: rebuild
        return None


def _store_cached(key: str, model: mujoco.MjModel, catalog: 'ObjectCatalog') -> None:
    import os
    import tempfile
    d = A.env_cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        for name, write in ((f'catalog_{key}.ids', lambda p: open(p, 'w').write(' '.join(catalog.ids))),
                            (f'catalog_{key}.mjb', lambda p: mujoco.mj_saveModel(catalog.model, p, None)),
                            (f'cell_{key}.mjb', lambda p: mujoco.mj_saveModel(model, p, None))):
            fd, tmp = tempfile.mkstemp(dir=d, suffix='.tmp')
            os.close(fd)
            write(tmp)
            os.replace(tmp, d / name)          # atomic: readers see old or new, never half a file
    except OSError:
        pass                                   # read-only home: just do not cache


def compiled_scene(options: SceneOptions, use_disk_cache: bool = True) -> CompiledScene:
    """A private copy of the compiled cell.

    Compilation (dm_control composition + MjSpec + 152 object meshes, a few seconds) is cached
    per process and, as .mjb files keyed by options, package versions and this code, in
    ~/.cache/chef_sim (CHEF_SIM_NO_CACHE=1 or use_disk_cache=False bypasses the disk cache).
    """
    import os
    with _SCENE_LOCK:
        base = _SCENE_CACHE.get(options)
        if base is None:
            disk = use_disk_cache and os.environ.get('CHEF_SIM_NO_CACHE', '') in ('', '0')
            key = _cache_key(options) if disk else ''
            cached = _load_cached(key) if disk else None
            if cached is None:
                spec = build_spec(options)
                model = spec.compile()
                catalog = ObjectCatalog.from_spec(spec)
                if disk:
                    _store_cached(key, model, catalog)
            else:
                model, catalog = cached
            base = CompiledScene(model, index_model(model), catalog)
            _SCENE_CACHE[options] = base
    return CompiledScene(copy.deepcopy(base.model), base.index, base.catalog)


def geom_names(model: mujoco.MjModel) -> List[str]:
    return [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g) or '' for g in range(model.ngeom)]
