"""Optional domain randomisation of the cell (off by default): lighting, object colours, camera
pose/fovy jitter, friction and object mass. Applied at reset from the episode's random generator,
always relative to the nominal model, so episodes do not drift and a seed reproduces an episode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import mujoco
import numpy as np

from chef_contract.config import field_
from chef_sim.scene import SceneIndex


@dataclass
class DomainRandomizationConfig:
    enabled: bool = field_(False, help='randomise at every reset (off = the benchmark cell)')
    light_diffuse_scale: float = field_(0.3, help='+- fraction of the light diffuse intensity', min=0.0, max=1.0)
    light_position_m: float = field_(0.2, help='+- m, uniform per axis, light position', min=0.0)
    object_colour_jitter: float = field_(0.15, help='+- per RGB channel of the object colours', min=0.0, max=1.0)
    camera_position_m: float = field_(0.01, help='+- m per axis of each basket camera', min=0.0)
    camera_rotation_rad: float = field_(0.02, help='max rad of a random small rotation per camera', min=0.0)
    camera_fovy_deg: float = field_(1.0, help='+- deg of each camera fovy', min=0.0)
    friction_scale: float = field_(0.2, help='+- fraction of object and fingertip sliding friction', min=0.0, max=0.9)
    object_mass_scale: float = field_(0.2, help='+- fraction of object mass (inertia scales along)', min=0.0, max=0.9)


class DomainRandomizer:
    """Keeps the nominal values of what it perturbs and re-applies perturbations per episode."""

    def __init__(self, model: mujoco.MjModel, index: SceneIndex, config: DomainRandomizationConfig):
        self.config = config
        self.index = index
        cams = np.array(list(index.cameras.values()))
        self._cams = cams
        self._nominal: Dict[str, np.ndarray] = {
            'light_diffuse': model.light_diffuse.copy(),
            'light_pos': model.light_pos.copy(),
            'cam_pos': model.cam_pos[cams].copy(),
            'cam_quat': model.cam_quat[cams].copy(),
            'cam_fovy': model.cam_fovy[cams].copy(),
        }
        self._vis = np.array([g[0] for g in index.prop_geoms.values()])
        self._col = np.array([g[1] for g in index.prop_geoms.values()] + list(index.pad_geoms))
        self._nominal['rgba'] = model.geom_rgba[self._vis].copy()
        self._nominal['friction'] = model.geom_friction[self._col].copy()

    def apply(self, model: mujoco.MjModel, rng: np.random.Generator) -> Dict[str, object]:
        """Perturb `model` in place (object masses: call after ObjectCatalog.assign, then set_const)."""
        c = self.config
        n = self._nominal
        u = lambda r, shape=(): rng.uniform(-r, r, size=shape)  # noqa: E731
        scale = 1.0 + u(c.light_diffuse_scale, (len(n['light_diffuse']), 1))
        model.light_diffuse[:] = np.clip(n['light_diffuse'] * scale, 0.0, 1.0)
        model.light_pos[:] = n['light_pos'] + u(c.light_position_m, n['light_pos'].shape)
        rgba = n['rgba'].copy()
        rgba[:, :3] = np.clip(rgba[:, :3] + u(c.object_colour_jitter, rgba[:, :3].shape), 0.0, 1.0)
        model.geom_rgba[self._vis] = rgba
        model.cam_pos[self._cams] = n['cam_pos'] + u(c.camera_position_m, n['cam_pos'].shape)
        quats = []
        for q0 in n['cam_quat']:
            axis = rng.normal(size=3)
            axis /= np.linalg.norm(axis)
            dq = np.zeros(4)
            mujoco.mju_axisAngle2Quat(dq, axis, float(rng.uniform(0.0, c.camera_rotation_rad)))
            q = np.zeros(4)
            mujoco.mju_mulQuat(q, q0, dq)
            quats.append(q)
        model.cam_quat[self._cams] = np.array(quats)
        model.cam_fovy[self._cams] = n['cam_fovy'] + u(c.camera_fovy_deg, n['cam_fovy'].shape)
        fr = n['friction'].copy()
        fr[:, 0] *= 1.0 + u(c.friction_scale, len(fr))
        model.geom_friction[self._col] = fr
        scales = {}
        for colour, body in self.index.prop_bodies.items():
            s = 1.0 + float(u(c.object_mass_scale))
            model.body_mass[body] *= s
            model.body_inertia[body] *= s
            scales[colour] = s
        return {'object_mass_scale': scales}
