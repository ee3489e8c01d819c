"""Test helper: a small MuJoCo scene with the cell's cameras placed from a calibration and coloured
boxes, rendered with real MuJoCo (headless EGL/OSMesa)."""

from typing import Dict, Mapping, Tuple

import numpy as np

from chef_real.cameras import MUJOCO_TO_OPTICAL, CameraCalibration
from chef_real.transforms import matrix_to_quat

RGBA = {'red': '1 0 0 1', 'green': '0 1 0 1', 'blue': '0 0 1 1'}


def scene_xml(cams: Mapping[str, CameraCalibration], boxes: Mapping[str, Tuple[np.ndarray, float]]) -> str:
    cam_xml = []
    for n, c in cams.items():
        q = matrix_to_quat(c.base_from_optical[:3, :3] @ MUJOCO_TO_OPTICAL)
        p = c.position_m
        cam_xml.append(f'<camera name="{n}" pos="{p[0]} {p[1]} {p[2]}" quat="{q[0]} {q[1]} {q[2]} {q[3]}" '
                       f'fovy="{c.fovy_deg}"/>')
    bodies = ''.join(f'<body name="{n}" pos="{p[0]} {p[1]} {p[2]}"><geom type="box" size="{s} {s} {s}" '
                     f'rgba="{RGBA[n]}"/></body>' for n, (p, s) in boxes.items())
    return f'''<mujoco><visual><quality shadowsize="0" offsamples="0"/>
<global offwidth="256" offheight="256"/></visual><worldbody>
<light pos="0.6 0 1.5" dir="0 0 -1" diffuse="0.8 0.8 0.8"/>
<geom type="box" pos="0.6 0 0.0298" size="0.25 0.25 0.02" rgba="0.5 0.5 0.55 1"/>
{''.join(cam_xml)}{bodies}</worldbody></mujoco>'''


def render(cams: Mapping[str, CameraCalibration], boxes, size: int = 128) -> Dict[str, np.ndarray]:
    import mujoco
    m = mujoco.MjModel.from_xml_string(scene_xml(cams, boxes))
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    r = mujoco.Renderer(m, size, size)
    try:
        out = {}
        for n in cams:
            r.update_scene(d, camera=n)
            out[n] = r.render().copy()
        return out
    finally:
        r.close()
