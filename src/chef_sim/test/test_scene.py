"""The compiled cell: benchmark assets, cameras at the spec poses, object re-shaping equals a fresh
compilation, render proxies leave physics untouched. (Compiles the cell 3x: ~15 s on 2 cores.)"""

import copy
import dataclasses

import mujoco
import numpy as np
import pytest

from chef_contract.spec import CAMERAS, OBJECT_COLOURS
from chef_sim import scene as S

OPTIONS = S.SceneOptions(physics_timestep_s=0.002, noslip_iterations=0)


@pytest.fixture(scope='module')
def spec():
    return S.build_spec(OPTIONS)


@pytest.fixture(scope='module')
def model(spec):
    return spec.compile()


def _numeric_fields(model):
    for name in dir(model):
        value = getattr(model, name, None)
        if not name.startswith('_') and isinstance(value, np.ndarray):
            yield name, value


def test_assets_come_from_the_installed_wheels(spec):
    import dm_robotics.moma as moma
    xml, _ = S.compose_benchmark_mjcf()
    assert 'robot0' in xml and 'rgb_basket' in xml and 'robotiq_fts300' in xml
    assert 'site-packages' in moma.__path__[0]
    assert len([m for m in spec.meshes if m.name.startswith('rgb_mesh_')]) == 152


def test_cameras_match_spec(model):
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    for name, cam in CAMERAS.items():
        cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, S.CAMERA_PREFIX + name)
        np.testing.assert_allclose(data.cam_xpos[cid], cam.position_m, atol=2e-3)
        axis = -data.cam_xmat[cid].reshape(3, 3)[:, 2]           # MuJoCo cameras look along -z
        np.testing.assert_allclose(axis, cam.optical_axis, atol=2e-3)
        x, y, z, w = cam.optical_quaternion_xyzw                 # REP 103 optical frame (tf_static)
        rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        np.testing.assert_allclose(data.cam_xmat[cid].reshape(3, 3) @ np.diag([1, -1, -1]), rot, atol=2e-4)
        assert model.cam_fovy[cid] == pytest.approx(cam.fovy_deg)


def test_benchmark_physics_settings(model):
    index = S.index_model(model)
    assert model.opt.cone == mujoco.mjtCone.mjCONE_ELLIPTIC
    assert np.all(model.actuator_actlimited[index.arm_actuators])
    np.testing.assert_allclose(model.actuator_actrange[index.arm_actuators], index.arm_joint_range)
    np.testing.assert_allclose(model.actuator_actrange[index.finger_actuator], [0, 255])
    np.testing.assert_allclose(model.actuator_ctrlrange[index.finger_actuator], [-255, 255])
    for colour in OBJECT_COLOURS:
        assert model.body_mass[index.prop_bodies[colour]] == pytest.approx(0.2)
        col = index.prop_geoms[colour][1]
        np.testing.assert_allclose(model.geom_friction[col], [0.5, 0.005, 0.0001])
        assert model.geom_condim[col] == 6
    assert model.vis.quality.shadowsize == 0 and model.vis.quality.offsamples == 0


def test_reshaping_props_equals_fresh_compilation(spec, model):
    """ObjectCatalog.assign + set_const gives exactly the model compiled with those objects."""
    catalog = S.ObjectCatalog.from_spec(spec)
    index = S.index_model(model)
    ids = ('x23', 'r6', 'g5')
    m = copy.deepcopy(model)
    d = mujoco.MjData(m)
    for colour, oid in zip(OBJECT_COLOURS, ids):
        catalog.assign(m, d, index, colour, oid)
    S.set_const(m, d)
    fresh = S.build_spec(OPTIONS, ids).compile()
    for name, value in _numeric_fields(m):
        other = getattr(fresh, name)
        assert value.shape == other.shape, name
        if value.dtype.kind == 'f':
            np.testing.assert_allclose(value, other, rtol=1e-9, atol=1e-12, err_msg=name)
        else:
            np.testing.assert_array_equal(value, other, err_msg=name)


def test_render_proxies_leave_physics_unchanged(model):
    plain = S.build_spec(dataclasses.replace(OPTIONS, render_proxies=False)).compile()
    assert model.ngeom > plain.ngeom                       # proxies were added
    for field in ('body_mass', 'body_inertia', 'body_ipos', 'body_iquat', 'body_subtreemass'):
        np.testing.assert_array_equal(getattr(model, field), getattr(plain, field), err_msg=field)
    # same trajectory under the same controls
    runs = []
    for m in (model, plain):
        d = mujoco.MjData(m)
        idx = S.index_model(m)
        d.qpos[idx.arm_qpos] = [0.0, -0.5186, -0.5294, 1.2209, 0.4086, 1.0783, 0.0]
        d.act[idx.arm_actuators] = d.qpos[idx.arm_qpos]
        d.ctrl[idx.arm_actuators] = [0.1, -0.1, 0.05, 0.0, 0.1, 0.0, 0.2]
        d.ctrl[idx.finger_actuator] = 255.0
        for c, x in zip(OBJECT_COLOURS, (0.55, 0.6, 0.65)):
            a = idx.prop_qpos[c]
            d.qpos[a:a + 3] = [x, 0.0, 0.12]
        mujoco.mj_step(m, d, nstep=200)
        runs.append(d.qpos.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    # proxies are drawn, originals hidden (group 3); proxies never collide and carry no mass
    names = S.geom_names(model)
    proxies = [g for g, n in enumerate(names) if n.endswith('_render_proxy')]
    assert proxies
    assert np.all(model.geom_contype[proxies] == 0) and np.all(model.geom_conaffinity[proxies] == 0)
    faces = sum(int(model.mesh_facenum[model.geom_dataid[g]]) for g in range(model.ngeom)
                if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH and model.geom_group[g] <= 2)
    faces_plain = sum(int(plain.mesh_facenum[plain.geom_dataid[g]]) for g in range(plain.ngeom)
                      if plain.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH and plain.geom_group[g] <= 2)
    assert faces < 0.3 * faces_plain
