"""Forward kinematics of a URDF with the standard library's XML parser and numpy (ROS-free).

The real cell's state adapter uses it to turn `joint_states` into the contract poses
(`tcp/pinch_pose` = frame `tcp`, `tcp/wrist_pose` = frame `right_hand`) and the wrist twist,
exactly from the robot description that robot_state_publisher, ros2_control and MoveIt read.
Supports fixed, revolute, continuous and prismatic joints (mimic joints are followed).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from chef_real.transforms import axis_angle_matrix, pose_matrix, rpy_to_matrix

JOINT_TYPES = ('fixed', 'revolute', 'continuous', 'prismatic')


class UrdfError(ValueError):
    """A URDF this module cannot use (missing links, loops, unsupported joint types)."""


@dataclass
class UrdfJoint:
    name: str
    type: str
    parent: str
    child: str
    origin: np.ndarray                       # 4x4 parent -> joint frame at q = 0
    axis: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0]))
    lower: Optional[float] = None
    upper: Optional[float] = None
    velocity: Optional[float] = None
    effort: Optional[float] = None
    mimic: Optional[tuple] = None            # (joint, multiplier, offset)

    def motion(self, q: float) -> np.ndarray:
        if self.type in ('revolute', 'continuous'):
            return pose_matrix((0, 0, 0), axis_angle_matrix(self.axis, q))
        if self.type == 'prismatic':
            return pose_matrix(self.axis * q, np.eye(3))
        return np.eye(4)


def _origin(el: Optional[ET.Element]) -> np.ndarray:
    if el is None:
        return np.eye(4)
    xyz = [float(v) for v in el.get('xyz', '0 0 0').split()]
    rpy = [float(v) for v in el.get('rpy', '0 0 0').split()]
    return pose_matrix(xyz, rpy_to_matrix(rpy))


class RobotModel:
    """Kinematic tree of a URDF: `forward(q)` gives every link's pose in the root frame."""

    def __init__(self, urdf_text: str):
        try:
            root = ET.fromstring(urdf_text)
        except ET.ParseError as exc:
            raise UrdfError(f'robot description is not valid XML: {exc}') from None
        if root.tag != 'robot':
            raise UrdfError(f'robot description root element is <{root.tag}>, expected <robot>')
        self.name = root.get('name', '')
        self.links: List[str] = [l.get('name') for l in root.findall('link')]
        self.joints: Dict[str, UrdfJoint] = {}
        for j in root.findall('joint'):
            jt = j.get('type')
            if jt not in JOINT_TYPES:
                raise UrdfError(f'joint {j.get("name")!r}: unsupported type {jt!r}')
            lim = j.find('limit')
            mim = j.find('mimic')
            axis = j.find('axis')
            self.joints[j.get('name')] = UrdfJoint(
                name=j.get('name'), type=jt, parent=j.find('parent').get('link'),
                child=j.find('child').get('link'), origin=_origin(j.find('origin')),
                axis=np.array([float(v) for v in (axis.get('xyz') if axis is not None else '1 0 0').split()]),
                lower=float(lim.get('lower')) if lim is not None and lim.get('lower') else None,
                upper=float(lim.get('upper')) if lim is not None and lim.get('upper') else None,
                velocity=float(lim.get('velocity')) if lim is not None and lim.get('velocity') else None,
                effort=float(lim.get('effort')) if lim is not None and lim.get('effort') else None,
                mimic=(mim.get('joint'), float(mim.get('multiplier', 1)), float(mim.get('offset', 0)))
                if mim is not None else None)
        names = set(self.links)
        self._parent_joint: Dict[str, UrdfJoint] = {}
        for j in self.joints.values():
            for link in (j.parent, j.child):
                if link not in names:
                    raise UrdfError(f'joint {j.name!r} refers to unknown link {link!r}')
            if j.child in self._parent_joint:
                raise UrdfError(f'link {j.child!r} has two parent joints')
            self._parent_joint[j.child] = j
        roots = [l for l in self.links if l not in self._parent_joint]
        if len(roots) != 1:
            raise UrdfError(f'a URDF needs exactly one root link, found {roots}')
        self.root = roots[0]

    @classmethod
    def from_file(cls, path) -> 'RobotModel':
        with open(path, encoding='utf-8') as f:
            return cls(f.read())

    @property
    def actuated_joints(self) -> List[str]:
        return [j.name for j in self.joints.values() if j.type != 'fixed' and j.mimic is None]

    def chain(self, tip: str, base: Optional[str] = None) -> List[UrdfJoint]:
        """Joints from `base` (default the root) down to link `tip`, in order."""
        base = base or self.root
        out = []
        link = tip
        while link != base:
            j = self._parent_joint.get(link)
            if j is None:
                raise UrdfError(f'link {tip!r} is not below {base!r}')
            out.append(j)
            link = j.parent
        return out[::-1]

    def _q(self, j: UrdfJoint, q: Mapping[str, float]) -> float:
        if j.mimic is not None:
            src, mul, off = j.mimic
            return mul * float(q.get(src, 0.0)) + off
        return float(q.get(j.name, 0.0))

    def link_pose(self, link: str, q: Mapping[str, float], base: Optional[str] = None) -> np.ndarray:
        """4x4 pose of `link` in `base` (default root) for joint positions `q` (missing = 0)."""
        t = np.eye(4)
        for j in self.chain(link, base):
            t = t @ j.origin @ j.motion(self._q(j, q))
        return t

    def jacobian(self, link: str, q: Mapping[str, float], joints: Sequence[str],
                 base: Optional[str] = None) -> np.ndarray:
        """6xN geometric Jacobian (linear; angular) of `link`'s origin in `base` w.r.t. `joints`."""
        t = np.eye(4)
        axes: Dict[str, tuple] = {}
        for j in self.chain(link, base):
            t = t @ j.origin
            if j.type != 'fixed':
                axes[j.name] = (j.type, t[:3, :3] @ (j.axis / np.linalg.norm(j.axis)), t[:3, 3].copy())
            t = t @ j.motion(self._q(j, q))
        p = t[:3, 3]
        jac = np.zeros((6, len(joints)))
        for i, name in enumerate(joints):
            if name not in axes:
                continue                    # joint not on this chain: no effect
            kind, z, o = axes[name]
            if kind == 'prismatic':
                jac[:3, i] = z
            else:
                jac[:3, i] = np.cross(z, p - o)
                jac[3:, i] = z
        return jac


def solve_ik(model: RobotModel, link: str, target: np.ndarray, joints: Sequence[str],
             q0: Mapping[str, float], iterations: int = 300, tolerance: float = 1e-6,
             damping: float = 1e-3) -> Dict[str, float]:
    """Damped least-squares IK for a 4x4 `target` pose of `link`; raises UrdfError if it fails.

    Joint limits are respected by clipping every step. Used offline (home pose of the SRDF) and
    by the reset planner's checks; the robot itself is moved by MoveIt.
    """
    q = {n: float(q0.get(n, 0.0)) for n in joints}
    lo = np.array([model.joints[n].lower if model.joints[n].lower is not None else -np.inf for n in joints])
    hi = np.array([model.joints[n].upper if model.joints[n].upper is not None else np.inf for n in joints])
    err = np.inf
    for _ in range(iterations):
        t = model.link_pose(link, q)
        dp = target[:3, 3] - t[:3, 3]
        r_err = target[:3, :3] @ t[:3, :3].T
        angle = np.arccos(np.clip((np.trace(r_err) - 1) / 2, -1.0, 1.0))
        if angle < 1e-9:
            dw = np.zeros(3)
        else:
            w = np.array([r_err[2, 1] - r_err[1, 2], r_err[0, 2] - r_err[2, 0], r_err[1, 0] - r_err[0, 1]])
            s = np.sin(angle)
            dw = w * (angle / (2 * s)) if s > 1e-9 else w / 2
        e = np.concatenate([dp, dw])
        err = float(np.linalg.norm(e))
        if err < tolerance:
            return q
        jac = model.jacobian(link, q, joints)
        dq = jac.T @ np.linalg.solve(jac @ jac.T + damping * np.eye(6), e)
        vec = np.clip(np.array([q[n] for n in joints]) + dq, lo, hi)
        q = dict(zip(joints, vec.tolist()))
    raise UrdfError(f'IK for {link} did not converge (residual {err:.2e})')
