"""PyTorch networks for the RGB-Stacking contract: observation encoder, multi-task actor and critic.

Shapes follow the contract (chef_contract.spec, shared rgb_stacking_spec.md §A.4, §B.5-B.8):

* observations are the *stacked* benchmark keys of `chef_contract.obs.FrameStacker` (state keys
  (3, n) newest first, `action/environment` (2, 8)), images uint8 [H, W, 3] (not stacked);
  batched tensors add a leading batch dim B;
* K = `n_intentions` SAC-X intentions (default len(INTENTIONS) = 6, index order of the contract);
* the agent action is 5-D in [-1, 1]: arm (vx, vy, vz, yaw_rate) from a diagonal Gaussian whose mean
  goes through tanh and whose scale is softplus(.) + 1e-4, gripper from a categorical over {-1, +1}
  (the released MPO experts' `JointGaussianLastDiscreteValued` head, §A.4 and precision X6:
  samples are mean + std * N(0, 1), no further squashing; `sample_action` clips them to [-1, 1]).

Architecture (sizes from `NetworkConfig`):

    state keys -> flatten -> Linear -> LayerNorm -> tanh            ("InputNormalizer" of §A.4)
    each camera -> uint8/255 - 0.5 -> strided conv stack (ELU) -> Linear -> LayerNorm -> tanh
                   (conv weights shared across cameras; per-camera features concatenated)
    features = concat(state features, camera features)              ObservationEncoder
    actor:  features -> torso MLP (ELU) -> K heads x (4 means, 4 scales, 2 gripper logits)
    critic: concat(features, clip(action, -1, 1)) -> shared torso MLP (ELU) -> K heads x 1 (or
            x n_atoms for a distributional critic)

Actor and critic each own an encoder by default (as the released experts); pass `encoder=` to
share one. Nothing here imports ROS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from chef_contract.config import ConfigError, field_, from_dict, to_dict
from chef_contract.spec import (
    ACTION_DIM, INTENTIONS, POLICY_CAMERAS, CAMERA_NAMES, DEFAULT_IMAGE_SIZE_PX,
    REAL_STATE_OBSERVATION_NAMES, STATE_OBSERVATION_NAMES, STATE_OBSERVATIONS, image_key,
)

ARM_DIM = 4
GRIPPER_CLASSES = 2                   # categorical over gripper values (-1, +1), index 0 = open
HEAD_OUTPUTS = 2 * ARM_DIM + GRIPPER_CLASSES   # per intention and step: arm mean, arm std pre-activation, gripper logits
GRIPPER_VALUES = (-1.0, 1.0)
MIN_STD = 1e-4                        # scale = softplus(x) + MIN_STD (released experts)
WRENCH_KEYS = ('wrist/force', 'wrist/torque')
PREV_ACTION_KEY = 'action/environment'
_KEY_SPECS = {k.name: k for k in STATE_OBSERVATIONS}
POSE_KEYS = tuple(k.name for k in STATE_OBSERVATIONS                      # 7-D (x, y, z, qw, qx, qy, qz)
                  if k.name.endswith(('/pose', '/abs_pose', '/to_pinch')))
PINCH_POSE_KEY = 'sawyer/pinch/pose'
STATE_VECTOR_PREFIX = '_state_vector/'     # ObservationEncoder.with_state_vector's obs entries
ROTATIONS = ('quaternion', 'matrix', 'relative')     # NetworkConfig.rotations

TensorDict = Dict[str, torch.Tensor]


@dataclass
class NetworkConfig:
    """Everything that fixes the networks' shapes; stored as JSON inside every checkpoint."""

    obs_mode: str = field_('pixels', choices=('state', 'pixels'),
                           help="'pixels': cameras + real-robot state keys; 'state': privileged "
                                'STATE_ONLY vector (sim only, fast)')
    state_keys: Tuple[str, ...] = field_(
        (), help='stacked state keys fed to the state encoder, in this order; empty = the default '
                 'of obs_mode (pixels: every real-robot key; state: all 18 STATE_ONLY keys)')
    cameras: Tuple[str, ...] = field_(POLICY_CAMERAS, help='cameras used in pixels mode')
    image_size: int = field_(DEFAULT_IMAGE_SIZE_PX, min=16, max=512,
                             help='network input size in px; other input sizes are resized (area)')
    encoder_channels: Tuple[int, ...] = field_((32, 64, 64), help='conv output channels per layer')
    encoder_kernels: Tuple[int, ...] = field_((8, 4, 3), help='conv kernel sizes (px)')
    encoder_strides: Tuple[int, ...] = field_((4, 2, 1), help='conv strides (strided = cheap on CPU)')
    image_feature_dim: int = field_(128, min=1, help='features per camera after the conv stack')
    state_feature_dim: int = field_(256, min=1, help='state encoder width (Linear -> LN -> tanh)')
    actor_torso: Tuple[int, ...] = field_((256, 256), help='actor MLP widths (ELU)')
    critic_torso: Tuple[int, ...] = field_((256, 256, 256), help='critic MLP widths shared by all tasks')
    head_hidden: Tuple[int, ...] = field_((), help='per-intention hidden layers of each head (ELU)')
    n_intentions: int = field_(len(INTENTIONS), min=1, help='K: one actor and one critic head each')
    layer_norm: bool = field_(True, help='LayerNorm + tanh after the encoders (False: ELU only)')
    use_wrench: bool = field_(True, help='feed wrist/force and wrist/torque')
    use_prev_action: bool = field_(True, help='feed action/environment (previous joint command)')
    prev_gripper_only: bool = field_(False, help='with use_prev_action: feed only the previous gripper '
                                                 'command (its last entry), not the 7 joint velocities')
    pose_positions_only: bool = field_(False, help='feed only x, y, z of the 7-D pose keys (drop the '
                                                   'quaternions; to_pinch quaternions are element-'
                                                   'wise differences, spec X4)')
    rotations: str = field_('quaternion', choices=ROTATIONS,
                            help="how the pose keys' orientations reach the encoder. 'quaternion': as "
                                 "observed (w >= 0, spec X2), which jumps to -q when w crosses 0 - a "
                                 "downward gripper sits at w ~ 0 and flips many times an episode. "
                                 "'matrix': the rotation matrix (9 values, continuous, sign-free); the "
                                 "to_pinch keys keep only their position difference (their quaternion "
                                 "part is a difference of two sign-ambiguous quaternions). 'relative': "
                                 "as 'matrix', and each object's to_pinch key also carries the object's "
                                 'axes seen from the gripper (gripper_axis_features: each axis\'s angle '
                                 'to the closing axis, doubled, so continuous under the half turn of a '
                                 'parallel gripper and under quaternion signs)')
    normalize_state: bool = field_(True, help='standardise the state vector with per-feature mean/std '
                                              'measured on the training data (stored in the network)')
    action_horizon: int = field_(1, min=1, max=64,
                                 help='the actor predicts the next H commands of every tick (action '
                                      'chunking, Zhao et al. 2023); acting averages every chunk that '
                                      'covers a tick (temporal ensembling). 1: one command')
    critic_atoms: int = field_(0, min=0, max=1001,
                               help='0: scalar Q per task; N > 1: distributional (categorical) critic')
    critic_v_min: float = field_(0.0, help='support minimum of the distributional critic')
    critic_v_max: float = field_(100.0, help='support maximum of the distributional critic')

    def __post_init__(self):
        self.state_keys = tuple(self.state_keys) or default_state_keys(self.obs_mode)
        self.cameras = tuple(self.cameras)
        for name in ('encoder_channels', 'encoder_kernels', 'encoder_strides', 'actor_torso',
                     'critic_torso', 'head_hidden'):
            setattr(self, name, tuple(int(v) for v in getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        if self.obs_mode not in ('state', 'pixels'):
            raise ConfigError(f"obs_mode: {self.obs_mode!r} is not one of ['state', 'pixels']")
        unknown = [k for k in self.state_keys if k not in _KEY_SPECS]
        if unknown:
            raise ConfigError(f'state_keys: {unknown} are not state observations; '
                              f'valid: {list(STATE_OBSERVATION_NAMES)}')
        if len(set(self.state_keys)) != len(self.state_keys):
            raise ConfigError('state_keys: duplicate keys')
        if self.obs_mode == 'pixels':
            if not self.cameras:
                raise ConfigError("cameras: pixels mode needs at least one camera")
            bad = [c for c in self.cameras if c not in CAMERA_NAMES]
            if bad:
                raise ConfigError(f'cameras: unknown {bad}; valid: {list(CAMERA_NAMES)}')
        n = len(self.encoder_channels)
        if n == 0 or len(self.encoder_kernels) != n or len(self.encoder_strides) != n:
            raise ConfigError('encoder_channels, encoder_kernels and encoder_strides need the same '
                              'non-zero length')
        if any(v < 1 for v in self.encoder_channels + self.encoder_kernels + self.encoder_strides):
            raise ConfigError('encoder sizes must be >= 1')
        if self.obs_mode == 'pixels' and self.conv_output_hw() < 1:
            raise ConfigError(f'image_size {self.image_size} is too small for the conv stack')
        if self.rotations not in ROTATIONS:
            raise ConfigError(f'rotations: {self.rotations!r} is not one of {list(ROTATIONS)}')
        if self.rotations != 'quaternion' and self.pose_positions_only:
            raise ConfigError(f'rotations: {self.rotations} needs the quaternions that pose_positions_only drops')
        if self.rotations == 'relative':
            for key in self.input_keys:
                if key.endswith('/to_pinch'):
                    need = [k for k in (key.replace('/to_pinch', '/abs_pose'), PINCH_POSE_KEY)
                            if k not in self.input_keys]
                    if need:
                        raise ConfigError(f'rotations: relative computes {key} from {need}, which the '
                                          'inputs lack')
        if self.critic_atoms == 1:
            raise ConfigError('critic_atoms: use 0 (scalar) or >= 2')
        if self.critic_atoms and not self.critic_v_max > self.critic_v_min:
            raise ConfigError('critic_v_max must exceed critic_v_min')
        if self.obs_mode == 'state' and not self.input_keys:
            raise ConfigError('state mode needs at least one state key')

    # --- derived ---------------------------------------------------------------------------------
    @property
    def input_keys(self) -> Tuple[str, ...]:
        """State keys actually fed to the network (state_keys minus the switched-off groups)."""
        keys = self.state_keys
        if not self.use_wrench:
            keys = tuple(k for k in keys if k not in WRENCH_KEYS)
        if not self.use_prev_action:
            keys = tuple(k for k in keys if k != PREV_ACTION_KEY)
        return keys

    @property
    def image_keys(self) -> Tuple[str, ...]:
        return tuple(image_key(c) for c in self.cameras) if self.obs_mode == 'pixels' else ()

    @property
    def privileged(self) -> bool:
        """True if the network reads sim-only keys (object poses): it cannot run on a real cell."""
        return any(not _KEY_SPECS[k].real for k in self.input_keys)

    @property
    def state_dim(self) -> int:
        return sum(math.prod(self.key_input_shape(k)) for k in self.input_keys)

    def key_input_shape(self, key: str) -> Tuple[int, ...]:
        """Shape of stacked key `key` as the encoder reads it (pose keys may drop quaternions)."""
        shape = _KEY_SPECS[key].shape
        if self.pose_positions_only and key in POSE_KEYS:
            return shape[:-1] + (3,)
        if self.rotations == 'matrix' and key in POSE_KEYS:
            return shape[:-1] + ((3,) if key.endswith('/to_pinch') else (12,))
        if self.rotations == 'relative' and key in POSE_KEYS:
            return shape[:-1] + (12,)
        if self.prev_gripper_only and key == PREV_ACTION_KEY:
            return shape[:-1] + (1,)
        return shape

    def conv_output_hw(self) -> int:
        hw = self.image_size
        for k, s in zip(self.encoder_kernels, self.encoder_strides):
            hw = (hw - k) // s + 1
        return hw

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> 'NetworkConfig':
        return from_dict(cls, dict(data))


def default_state_keys(obs_mode: str) -> Tuple[str, ...]:
    return STATE_OBSERVATION_NAMES if obs_mode == 'state' else REAL_STATE_OBSERVATION_NAMES


# --------------------------------------------------------------------------------------------------
# numpy observations -> tensors
# --------------------------------------------------------------------------------------------------
def obs_to_tensors(obs: Mapping[str, np.ndarray], config: NetworkConfig,
                   device: Union[str, torch.device] = 'cpu') -> TensorDict:
    """Stacked observation(s) from chef_contract.obs (numpy) -> batched tensors for the networks.

    Accepts one observation (shapes exactly as exposed, e.g. (3, 7), images (H, W, 3)) or a batch
    with a leading dim B. Only the keys the network reads are converted; missing keys, wrong shapes
    and non-finite state values raise ValueError (never reach a network).
    """
    out: TensorDict = {}
    batch = None
    for name in config.input_keys:
        if name not in obs:
            raise ValueError(f'observation lacks {name!r} (network state keys: {list(config.input_keys)})')
        arr = np.asarray(obs[name], np.float32)
        want = _KEY_SPECS[name].shape
        if arr.shape == want:
            arr = arr[None]
        elif arr.shape[1:] != want:
            raise ValueError(f'{name}: shape {arr.shape}, expected {want} or (B,) + {want}')
        if not np.all(np.isfinite(arr)):
            raise ValueError(f'{name} is not finite')
        batch = _check_batch(batch, arr.shape[0], name)
        out[name] = torch.from_numpy(np.ascontiguousarray(arr)).to(device)
    for name in config.image_keys:
        if name not in obs:
            raise ValueError(f'observation lacks image {name!r}')
        arr = np.asarray(obs[name])
        if arr.dtype != np.uint8:
            raise ValueError(f'{name}: images must be uint8, got {arr.dtype}')
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f'{name}: expected [H, W, 3] or [B, H, W, 3], got {arr.shape}')
        batch = _check_batch(batch, arr.shape[0], name)
        out[name] = torch.from_numpy(np.ascontiguousarray(arr)).to(device)
    return out


def batch_observations(observations: Sequence[Mapping[str, np.ndarray]],
                       config: NetworkConfig) -> Dict[str, np.ndarray]:
    """A list of single stacked observations -> one dict of numpy arrays with a leading batch dim."""
    keys = config.input_keys + config.image_keys
    return {k: np.stack([np.asarray(o[k]) for o in observations]) for k in keys}


def _check_batch(batch, n, name):
    if batch is not None and n != batch:
        raise ValueError(f'{name}: batch size {n} differs from {batch}')
    return n


def dummy_observation(config: NetworkConfig, batch: int = 1) -> TensorDict:
    """Zero state / mid-grey images with the network's input shapes (warm-up, shape checks)."""
    out: TensorDict = {}
    for name in config.input_keys:
        out[name] = torch.zeros((batch,) + _KEY_SPECS[name].shape)
    for name in config.image_keys:
        out[name] = torch.full((batch, config.image_size, config.image_size, 3), 128, dtype=torch.uint8)
    return out


# --------------------------------------------------------------------------------------------------
# image augmentation (training only)
# --------------------------------------------------------------------------------------------------
def random_shift(images: torch.Tensor, pad: int,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """DrQ's random shift (Kostrikov et al. 2020): each image of a batch [B, H, W, C] is padded by
    `pad` px with its edge pixels (replicate) and cropped back to H x W at a random offset, i.e.
    shifted by an integer (dy, dx) in [-pad, pad]^2, independently per image. One gather of pixels
    on the images' device in their dtype (uint8 stays uint8, nothing is interpolated); `generator`,
    if given, must live on that device. pad 0 returns the input."""
    if pad <= 0:
        return images
    if images.dim() != 4:
        raise ValueError(f'random_shift expects [B, H, W, C], got {tuple(images.shape)}')
    b, h, w, c = images.shape
    dev = images.device
    shift = torch.randint(-pad, pad + 1, (b, 2), generator=generator, device=dev)
    rows = (torch.arange(h, device=dev)[None, :] + shift[:, :1]).clamp_(0, h - 1)       # [B, H]
    cols = (torch.arange(w, device=dev)[None, :] + shift[:, 1:]).clamp_(0, w - 1)       # [B, W]
    index = (rows[:, :, None] * w + cols[:, None, :]).reshape(b, h * w, 1).expand(b, h * w, c)
    return images.reshape(b, h * w, c).gather(1, index).view(b, h, w, c)


def shift_images(obs: Mapping[str, torch.Tensor], image_keys: Sequence[str], pad: int,
                 generator: Optional[torch.Generator] = None) -> TensorDict:
    """`obs` with every image key randomly shifted (random_shift); state keys untouched."""
    if pad <= 0 or not image_keys:
        return dict(obs)
    out = dict(obs)
    for k in image_keys:
        out[k] = random_shift(obs[k], pad, generator)
    return out


# --------------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------------
def mlp(in_dim: int, widths: Sequence[int]) -> Tuple[nn.Sequential, int]:
    layers: List[nn.Module] = []
    for w in widths:
        layers += [nn.Linear(in_dim, w), nn.ELU()]
        in_dim = w
    return nn.Sequential(*layers), in_dim


class MultiHeadLinear(nn.Module):
    """K independent linear maps applied to the same (or per-head) input: [B, in] -> [B, K, out]."""

    def __init__(self, in_dim: int, out_dim: int, heads: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(heads, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(heads, out_dim))
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return torch.einsum('bi,kio->bko', x, self.weight) + self.bias
        return torch.einsum('bki,kio->bko', x, self.weight) + self.bias


class MultiHead(nn.Module):
    """Per-intention head: optional per-head hidden layers (ELU), then K x out_dim outputs."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, heads: int):
        super().__init__()
        self.hidden = nn.ModuleList()
        for w in hidden:
            self.hidden.append(MultiHeadLinear(in_dim, w, heads))
            in_dim = w
        self.out = MultiHeadLinear(in_dim, out_dim, heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = F.elu(layer(x))
        return self.out(x)


class ImageEncoder(nn.Module):
    """Strided conv stack shared across cameras: uint8 [B, H, W, 3] per camera -> [B, C * D]."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.size = config.image_size
        convs: List[nn.Module] = []
        ch = 3
        for c, k, s in zip(config.encoder_channels, config.encoder_kernels, config.encoder_strides):
            convs += [nn.Conv2d(ch, c, k, stride=s), nn.ELU()]
            ch = c
        self.conv = nn.Sequential(*convs)
        hw = config.conv_output_hw()
        self.project = nn.Linear(ch * hw * hw, config.image_feature_dim)
        self.norm = nn.LayerNorm(config.image_feature_dim) if config.layer_norm else None
        self.n_cameras = len(config.cameras)
        self.output_dim = config.image_feature_dim * self.n_cameras

    def forward(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        b = images[0].shape[0]
        x = torch.cat(list(images), 0).permute(0, 3, 1, 2).float().mul_(1.0 / 255.0).sub_(0.5)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode='area')
        x = self.project(self.conv(x).flatten(1))
        x = torch.tanh(self.norm(x)) if self.norm is not None else F.elu(x)
        # [C*B, D] -> [B, C*D], camera-major within each sample
        return x.view(self.n_cameras, b, -1).permute(1, 0, 2).reshape(b, -1)


def rotation_matrix(quat: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (w, x, y, z) [..., 4] -> rotation matrices [..., 3, 3]; q and -q give the same
    matrix. The quaternion is normalised first; an all-zero one (padding) gives the zero matrix."""
    q = quat / quat.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    w, x, y, z = q.unbind(-1)
    rows = [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]
    m = torch.stack(rows, dim=-1).reshape(q.shape[:-1] + (3, 3))
    return m * (quat.abs().sum(-1) > 0)[..., None, None].to(m.dtype)


def gripper_axis_features(obj_quat: torch.Tensor, pinch_quat: torch.Tensor) -> torch.Tensor:
    """An object's axes seen from the gripper, [..., 9]: for each object axis (a_x, a_y, a_z)
    expressed in the pinch frame (quaternions (w, x, y, z) [..., 4]), a_y^2 - a_x^2 and 2 a_x a_y
    (its angle to the closing axis, pinch y, doubled and scaled by its length in the closing plane)
    and a_x^2 + a_y^2 (that length). Quadratic in the axis, so a half turn of the parallel gripper
    and the sign of either quaternion change nothing: what a grasp's yaw alignment needs, which the
    benchmark's to_pinch quaternion (an element-wise difference, spec X4) does not give."""
    rel = rotation_matrix(pinch_quat).transpose(-1, -2) @ rotation_matrix(obj_quat)   # columns: object axes
    ax, ay = rel[..., 0, :], rel[..., 1, :]
    return torch.cat([ay * ay - ax * ax, 2 * ax * ay, ax * ax + ay * ay], dim=-1)


class ObservationEncoder(nn.Module):
    """Dict of batched observation tensors -> features [B, output_dim]."""

    def _state_part(self, obs: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
        x = obs[key]
        if self.config.pose_positions_only and key in POSE_KEYS:
            return x[..., :3]
        if self.config.rotations != 'quaternion' and key in POSE_KEYS:
            if not key.endswith('/to_pinch'):
                return torch.cat([x[..., :3], rotation_matrix(x[..., 3:7]).flatten(-2)], dim=-1)
            if self.config.rotations == 'matrix':
                return x[..., :3]
            return torch.cat([x[..., :3], gripper_axis_features(
                obs[key.replace('/to_pinch', '/abs_pose')][..., 3:7].float(),
                obs[PINCH_POSE_KEY][..., 3:7].float())], dim=-1)
        if self.config.prev_gripper_only and key == PREV_ACTION_KEY:
            return x[..., -1:]
        return x

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        self.state_keys = config.input_keys
        self.image_keys = config.image_keys
        dim = 0
        if self.state_keys:
            # Per-feature standardisation: raw benchmark inputs span 1e-3 (quaternion noise) to 255
            # (gripper command); stats come from the training data (fit_state_statistics) and travel
            # in the checkpoint; until fitted they are the identity.
            self.register_buffer('state_mean', torch.zeros(config.state_dim))
            self.register_buffer('state_std', torch.ones(config.state_dim))
            self.register_buffer('state_stats_ready', torch.tensor(False))
            self.state_linear = nn.Linear(config.state_dim, config.state_feature_dim)
            self.state_norm = nn.LayerNorm(config.state_feature_dim) if config.layer_norm else None
            dim += config.state_feature_dim
        self.images = ImageEncoder(config) if self.image_keys else None
        if self.images is not None:
            dim += self.images.output_dim
        self.output_dim = dim
        self.train_noise_std = 0.0      # set by a learner (LearnerConfig.state_noise_std); training mode only
        # the obs entry under which `with_state_vector` stores this input set's state vector
        self.state_vector_key = (f'{STATE_VECTOR_PREFIX}{config.rotations}/{int(config.pose_positions_only)}'
                                 f'{int(config.prev_gripper_only)}/' + ','.join(self.state_keys))

    def with_state_vector(self, obs: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """`obs` plus its state vector, so every network that reads the same inputs (a learner's
        actor, critics, value and their targets: one NetworkConfig) converts the poses once per batch
        instead of once per network (rotations 'matrix'/'relative' cost IQL a third of its speed)."""
        return dict(obs, **{self.state_vector_key: self.state_vector(obs)})

    def state_vector(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The concatenated (un-normalised) state inputs [B, state_dim]."""
        cached = obs.get(self.state_vector_key)
        if cached is not None:
            return cached
        b = obs[self.state_keys[0]].shape[0]
        return torch.cat([self._state_part(obs, k).reshape(b, -1).float() for k in self.state_keys], dim=1)

    @torch.no_grad()
    def fit_state_statistics(self, obs: Mapping[str, torch.Tensor], min_std: float = 1e-2) -> None:
        """Set the standardisation from a (large) batch of training observations."""
        if not self.state_keys:
            return
        x = self.state_vector(obs).to(self.state_mean.device)
        self.state_mean.copy_(x.mean(0))
        self.state_std.copy_(x.std(0).clamp_min(min_std) if x.shape[0] > 1 else torch.ones_like(self.state_std))
        self.state_stats_ready.fill_(True)

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        if self.state_keys:
            x = (self.state_vector(obs) - self.state_mean) / self.state_std
            if self.training and self.train_noise_std > 0:
                x = x + self.train_noise_std * torch.randn_like(x)
            x = self.state_linear(x)
            parts.append(torch.tanh(self.state_norm(x)) if self.state_norm is not None else F.elu(x))
        if self.images is not None:
            parts.append(self.images([obs[k] for k in self.image_keys]))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


# --------------------------------------------------------------------------------------------------
# actor
# --------------------------------------------------------------------------------------------------
class MultiTaskActor(nn.Module):
    """K-intention policy: forward(obs) -> (mean [B,K,4], std [B,K,4], gripper_logits [B,K,2])."""

    def __init__(self, config: NetworkConfig, encoder: Optional[ObservationEncoder] = None):
        super().__init__()
        self.config = config
        self.encoder = encoder if encoder is not None else ObservationEncoder(config)
        self.torso, dim = mlp(self.encoder.output_dim, config.actor_torso)
        self.horizon = int(config.action_horizon)
        self.head = MultiHead(dim, config.head_hidden, self.horizon * HEAD_OUTPUTS, config.n_intentions)

    def forward(self, obs: Mapping[str, torch.Tensor], detach_encoder: bool = False):
        """The distribution of this tick's command: (mean [B,K,4], std [B,K,4], logits [B,K,2])."""
        features = self.encoder(obs)
        if detach_encoder:
            features = features.detach()
        return self._split(self._first(self.head(self.torso(features))))

    def _first(self, out: torch.Tensor) -> torch.Tensor:
        return out if self.horizon == 1 else out[..., :HEAD_OUTPUTS]

    def _chunk(self, out: torch.Tensor) -> torch.Tensor:
        return out.reshape(*out.shape[:-1], self.horizon, HEAD_OUTPUTS)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Weights of an actor with longer chunks load into this one as their first H steps (an
        online learner with one command per tick starts from a chunking offline policy's step 0)."""
        for name in ('weight', 'bias'):
            key = f'{prefix}head.out.{name}'
            w = state_dict.get(key)
            want = self.horizon * HEAD_OUTPUTS
            if w is not None and w.shape[-1] > want and w.shape[-1] % HEAD_OUTPUTS == 0:
                state_dict[key] = w[..., :want].clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward_chunk(self, obs: Mapping[str, torch.Tensor]):
        """The next H commands' distributions: (mean [B,K,H,4], std [B,K,H,4], logits [B,K,H,2]);
        step 0 is forward()'s."""
        return self._split(self._chunk(self.head(self.torso(self.encoder(obs)))))

    def forward_chunk_with_detached_std(self, obs: Mapping[str, torch.Tensor]):
        """forward_with_detached_std over the chunk: [B,K,H,...] each."""
        return self._with_detached_std(obs, self._chunk)

    @staticmethod
    def _split(out: torch.Tensor):
        mean = torch.tanh(out[..., :ARM_DIM])
        std = F.softplus(out[..., ARM_DIM:2 * ARM_DIM]) + MIN_STD
        logits = out[..., 2 * ARM_DIM:]
        return mean, std, logits

    def forward_with_detached_std(self, obs: Mapping[str, torch.Tensor]):
        """(mean, std, logits, std_detached): std_detached is the std head applied to the detached
        torso output, so a loss on it trains only the std head's weights."""
        return self._with_detached_std(obs, self._first)

    def _with_detached_std(self, obs: Mapping[str, torch.Tensor], steps):
        """(mean, std, logits, std_detached) of the head's outputs picked by `steps` (_first or
        _chunk)."""
        h = self.torso(self.encoder(obs))
        mean, std, logits = self._split(steps(self.head(h)))
        _, std_detached, _ = self._split(steps(self.head(h.detach())))
        return mean, std, logits, std_detached

    @torch.no_grad()
    def act(self, obs: Mapping[str, torch.Tensor], intention: Union[int, torch.Tensor],
            deterministic: bool = False, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Action [B, 5] in [-1, 1] of intention k (int or LongTensor [B])."""
        mean, std, logits = self(obs)
        return sample_action(mean, std, logits, intention, deterministic, generator)

    def log_prob(self, obs: Mapping[str, torch.Tensor], action: torch.Tensor) -> torch.Tensor:
        """log pi_k(action | obs) for every intention: [B, K]."""
        return action_log_prob(*self(obs), action)


def select_intention(x: torch.Tensor, intention: Union[int, torch.Tensor]) -> torch.Tensor:
    """[B, K, ...] -> [B, ...] for intention k (int) or one intention per sample (LongTensor [B])."""
    if isinstance(intention, int):
        return x[:, intention]
    idx = intention.long().view(-1, *([1] * (x.dim() - 1))).expand(-1, 1, *x.shape[2:])
    return x.gather(1, idx).squeeze(1)


def sample_action(mean: torch.Tensor, std: torch.Tensor, logits: torch.Tensor,
                  intention: Union[int, torch.Tensor, None] = None, deterministic: bool = False,
                  generator: Optional[torch.Generator] = None, clip: bool = True) -> torch.Tensor:
    """5-D action(s) from the head outputs.

    With `intention` the result is [B, 5] for that intention, else [B, K, 5] for every intention.
    Stochastic: arm = mean + std * N(0, 1) (precision X6), gripper ~ Categorical(softmax(logits));
    deterministic: arm = mean, gripper = most likely class. `clip` clips the arm to [-1, 1].
    """
    if intention is not None:
        mean, std, logits = (select_intention(t, intention) for t in (mean, std, logits))
    if deterministic:
        arm = mean
        cls = logits.argmax(-1)
    else:
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        arm = mean + std * noise
        u = torch.rand(logits.shape[:-1], generator=generator, dtype=logits.dtype, device=logits.device)
        p_close = torch.softmax(logits, -1)[..., 1]
        cls = (u < p_close).long()
    if clip:
        arm = arm.clamp(-1.0, 1.0)
    gripper = cls.to(arm.dtype) * 2.0 - 1.0          # class 0 -> -1 (open), class 1 -> +1 (close)
    return torch.cat([arm, gripper.unsqueeze(-1)], dim=-1)


def action_log_prob(mean: torch.Tensor, std: torch.Tensor, logits: torch.Tensor,
                    action: torch.Tensor) -> torch.Tensor:
    """log-probability of 5-D actions [B, 5] under every intention: [B, K].

    Arm: diagonal Gaussian N(mean, std) on the 4 arm dims (no tanh correction: the mean is squashed,
    the sample is not). Gripper: categorical over {-1, +1}; a gripper value > 0 counts as +1 (close),
    as the bang-bang effector does.
    """
    if action.dim() != 2 or action.shape[-1] != ACTION_DIM:
        raise ValueError(f'action must be [B, {ACTION_DIM}], got {tuple(action.shape)}')
    arm = action[:, None, :ARM_DIM]
    var = std * std
    arm_lp = (-0.5 * (arm - mean) ** 2 / var - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)
    cls = (action[:, ARM_DIM] > 0).long()                                    # [B]
    grip_lp = torch.log_softmax(logits, -1).gather(
        -1, cls.view(-1, 1, 1).expand(-1, logits.shape[1], 1)).squeeze(-1)  # [B, K]
    return arm_lp + grip_lp


def entropy(std: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Entropy of every intention's action distribution: [B, K] (Gaussian arm + categorical gripper)."""
    arm = (0.5 + 0.5 * math.log(2 * math.pi) + torch.log(std)).sum(-1)
    logp = torch.log_softmax(logits, -1)
    return arm - (logp.exp() * logp).sum(-1)


# --------------------------------------------------------------------------------------------------
# critic
# --------------------------------------------------------------------------------------------------
class MultiTaskCritic(nn.Module):
    """Q for every intention: forward(obs, action [B, 5]) -> q [B, K]; torso shared by all tasks.

    With `critic_atoms` N > 1 the heads output logits over N fixed atoms between critic_v_min and
    critic_v_max; `forward` returns the expectation, `logits` the raw [B, K, N].
    """

    def __init__(self, config: NetworkConfig, encoder: Optional[ObservationEncoder] = None):
        super().__init__()
        self.config = config
        self.encoder = encoder if encoder is not None else ObservationEncoder(config)
        self.torso, dim = mlp(self.encoder.output_dim + ACTION_DIM, config.critic_torso)
        self.n_atoms = config.critic_atoms
        self.head = MultiHead(dim, config.head_hidden, max(1, self.n_atoms), config.n_intentions)
        if self.n_atoms:
            self.register_buffer(
                'atoms', torch.linspace(config.critic_v_min, config.critic_v_max, self.n_atoms),
                persistent=False)

    def _raw(self, obs, action, detach_encoder=False):
        features = self.encoder(obs)
        if detach_encoder:
            features = features.detach()
        if action.dim() != 2 or action.shape[-1] != ACTION_DIM:
            raise ValueError(f'action must be [B, {ACTION_DIM}], got {tuple(action.shape)}')
        x = torch.cat([features, action.clamp(-1.0, 1.0).to(features.dtype)], dim=1)
        return self.head(self.torso(x))

    def forward(self, obs: Mapping[str, torch.Tensor], action: torch.Tensor,
                detach_encoder: bool = False) -> torch.Tensor:
        out = self._raw(obs, action, detach_encoder)
        if not self.n_atoms:
            return out.squeeze(-1)
        return (torch.softmax(out, -1) * self.atoms).sum(-1)

    def q_for_actions(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q of S actions per state from encoder features: features [B, F], actions [B, S, 5] ->
        q [B, S, K] (expected Q for a distributional critic). Equal to forward() per action, but the
        state part of the first torso layer is computed once per state, not once per action (what
        makes sampled-action baselines and expectations cheap for the learners)."""
        b, s, _ = actions.shape
        first = self.torso[0]
        f_dim = features.shape[-1]
        h = (F.linear(features, first.weight[:, :f_dim], first.bias).unsqueeze(1)
             + F.linear(actions.clamp(-1.0, 1.0).to(features.dtype), first.weight[:, f_dim:]))
        out = self.head(self.torso[1:](h.reshape(b * s, -1)))
        if self.n_atoms:
            out = (torch.softmax(out, -1) * self.atoms).sum(-1)
        else:
            out = out.squeeze(-1)
        return out.reshape(b, s, -1)

    def logits(self, obs: Mapping[str, torch.Tensor], action: torch.Tensor,
               detach_encoder: bool = False) -> torch.Tensor:
        if not self.n_atoms:
            raise RuntimeError('logits() needs a distributional critic (critic_atoms > 1)')
        return self._raw(obs, action, detach_encoder)


class MultiTaskValue(nn.Module):
    """State value for every intention: forward(obs) -> v [B, K] (IQL's expectile value); the
    critic's torso widths and per-intention heads, its own encoder."""

    def __init__(self, config: NetworkConfig, encoder: Optional[ObservationEncoder] = None):
        super().__init__()
        self.config = config
        self.encoder = encoder if encoder is not None else ObservationEncoder(config)
        self.torso, dim = mlp(self.encoder.output_dim, config.critic_torso)
        self.head = MultiHead(dim, config.head_hidden, 1, config.n_intentions)

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.torso(self.encoder(obs))).squeeze(-1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
