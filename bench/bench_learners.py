"""Learner updates/s: chef_trainer CRR (1 and 6 intentions, eager and torch.compile) vs d3rlpy 2.8.1 CRR on the same data, network sizes and batch; state-only and pixel variants; ratios to d3rlpy from one run.

Both sides run the same encoder and MLP modules (chef_policy.networks, wrapped as a d3rlpy encoder
factory), the same CRR settings (4 advantage samples, mean baseline, exp weights beta 1 clipped at
20, hard target update every 100, Adam 3e-4, 1 next-state action) and the same transitions, and
every timed update includes drawing its batch from the learner's own replay (d3rlpy: `fit`).
Run: python bench/bench_learners.py [--quick] [--device cuda] [--no-compile]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

warnings.filterwarnings('ignore')
ROOT = Path(__file__).resolve().parents[1]
for pkg in ('chef_contract', 'chef_policy', 'chef_trainer', 'chef_recorder'):
    sys.path.insert(0, str(ROOT / 'src' / pkg))

from chef_contract.spec import INTENTIONS, POLICY_CAMERAS, STATE_OBSERVATIONS  # noqa: E402
from chef_policy.networks import NetworkConfig, ObservationEncoder, mlp  # noqa: E402
from chef_trainer.config import CRRConfig, LearnerConfig, OptimConfig  # noqa: E402
from chef_trainer.learners import make_learner  # noqa: E402
from chef_trainer.replay import ReplayBuffer  # noqa: E402

SPECS = {k.name: k.shape for k in STATE_OBSERVATIONS}
EPISODE = 100


def variant_config(variant: str, k: int) -> NetworkConfig:
    if variant == 'state':
        return NetworkConfig(obs_mode='state', n_intentions=k, state_feature_dim=256,
                             actor_torso=(256, 256), critic_torso=(256, 256))
    return NetworkConfig(obs_mode='pixels', n_intentions=k, image_size=64, cameras=POLICY_CAMERAS,
                         state_feature_dim=256, actor_torso=(256, 256), critic_torso=(256, 256))


def make_data(net: NetworkConfig, n: int, seed: int = 0):
    """Episodes of stacked observations: {key: [E, T+1, ...]}, actions [E, T, 5], rewards."""
    rng = np.random.default_rng(seed)
    e = max(1, n // EPISODE)
    obs = {k: rng.normal(size=(e, EPISODE + 1) + SPECS[k]).astype(np.float32) for k in net.input_keys}
    for k in net.image_keys:
        obs[k] = rng.integers(0, 256, (e, EPISODE + 1, net.image_size, net.image_size, 3), np.uint8)
    actions = rng.uniform(-1, 1, (e, EPISODE, 5)).astype(np.float32)
    actions[..., 4] = np.sign(actions[..., 4])
    rewards = rng.uniform(0, 1, (e, EPISODE, 7)).astype(np.float32)
    return obs, actions, rewards


def ours_buffer(net, data):
    obs, actions, rewards = data
    e = actions.shape[0]
    spec = {k: v.shape[2:] for k, v in obs.items()}
    buf = ReplayBuffer(e * (EPISODE + 1) + 16, spec, n_step=1, discount=0.99,
                       obs_dtypes={k: v.dtype for k, v in obs.items()})
    for i in range(e):
        buf.add_episode({k: v[i] for k, v in obs.items()}, actions[i], rewards[i])
    return buf


# --- d3rlpy side: the same modules behind d3rlpy's encoder-factory interface ------------------------
def d3rlpy_dataset(net, data):
    import d3rlpy
    obs, actions, rewards = data
    e = actions.shape[0]
    flat_state = np.concatenate([obs[k].reshape(e, EPISODE + 1, -1) for k in net.input_keys], -1)
    flat_state = flat_state.reshape(e * (EPISODE + 1), -1)
    acts = np.concatenate([actions, np.zeros((e, 1, 5), np.float32)], 1).reshape(-1, 5)
    rew = np.concatenate([rewards[..., INTENTIONS.index('staged'):INTENTIONS.index('staged') + 1],
                          np.zeros((e, 1, 1), np.float32)], 1).reshape(-1, 1)
    timeouts = np.zeros((e, EPISODE + 1))
    timeouts[:, -1] = 1
    terminals = np.zeros_like(timeouts).reshape(-1)
    if net.image_keys:
        imgs = np.concatenate([obs[k].transpose(0, 1, 4, 2, 3) for k in net.image_keys], 2)
        observations = [flat_state, imgs.reshape((-1,) + imgs.shape[2:])]
    else:
        observations = flat_state
    return d3rlpy.dataset.MDPDataset(observations, acts, rew, terminals, timeouts=timeouts.reshape(-1))


def d3rlpy_factory(net: NetworkConfig):
    from d3rlpy.models.encoders import EncoderFactory
    from d3rlpy.models.torch.encoders import Encoder, EncoderWithAction

    def to_dict(x):
        state = x[0] if isinstance(x, (list, tuple)) else x
        out, col = {}, 0
        for k in net.input_keys:
            size = int(np.prod(SPECS[k]))
            out[k] = state[:, col:col + size].reshape((-1,) + SPECS[k])
            col += size
        if isinstance(x, (list, tuple)):
            imgs = x[1]
            for i, k in enumerate(net.image_keys):
                out[k] = imgs[:, 3 * i:3 * i + 3].permute(0, 2, 3, 1)
        return out

    class Enc(Encoder):
        def __init__(self):
            super().__init__()
            self.encoder = ObservationEncoder(net)
            self.torso, _ = mlp(self.encoder.output_dim, net.actor_torso)

        def forward(self, x):
            return self.torso(self.encoder(to_dict(x)))

    class EncA(EncoderWithAction):
        def __init__(self, action_size):
            super().__init__()
            self.encoder = ObservationEncoder(net)
            self.torso, _ = mlp(self.encoder.output_dim + action_size, net.critic_torso)

        def forward(self, x, action):
            return self.torso(torch.cat([self.encoder(to_dict(x)), action.clamp(-1, 1)], 1))

    @dataclass()
    class ChefEncoderFactory(EncoderFactory):
        def create(self, observation_shape):
            return Enc()

        def create_with_action(self, observation_shape, action_size, discrete_action=False):
            return EncA(action_size)

        @staticmethod
        def get_type() -> str:
            return 'chef'

    return ChefEncoderFactory()


def time_d3rlpy(net, data, batch, steps, device):
    import d3rlpy
    from d3rlpy.logging import NoopAdapterFactory
    ds = d3rlpy_dataset(net, data)
    factory = d3rlpy_factory(net)
    crr = d3rlpy.algos.CRRConfig(
        batch_size=batch, actor_encoder_factory=factory, critic_encoder_factory=factory,
        n_action_samples=4, advantage_type='mean', weight_type='exp', beta=1.0, max_weight=20.0,
        target_update_type='hard', target_update_interval=100, actor_learning_rate=3e-4,
        critic_learning_rate=3e-4).create(device=device)
    kw = dict(show_progress=False, logger_adapter=NoopAdapterFactory(), save_interval=10**9)
    crr.fit(ds, n_steps=3, n_steps_per_epoch=3, **kw)                     # build + warm-up
    _sync(device)
    t = time.perf_counter()
    crr.fit(ds, n_steps=steps, n_steps_per_epoch=steps, **kw)
    _sync(device)
    return steps / (time.perf_counter() - t)


def time_ours(net, buf, batch, steps, device, compile_):
    intentions = INTENTIONS if net.n_intentions == len(INTENTIONS) else ('staged',)
    cfg = LearnerConfig(algorithm='crr', network=net, intentions=intentions, batch_size=batch,
                        n_step=1, next_action_samples=1, target_update_period=100, compile=compile_,
                        crr=CRRConfig(advantage_samples=4, weight_mode='exp', beta=1.0, max_weight=20.0),
                        optim=OptimConfig(actor_lr=3e-4, critic_lr=3e-4, grad_clip=0.0), device=device)
    learner = make_learner(cfg)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for _ in range(3):                                                    # warm-up (+ compile)
        learner.update(buf.sample(batch, rng))
    _sync(device)
    warm = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(steps):
        learner.update(buf.sample(batch, rng))
    _sync(device)
    return steps / (time.perf_counter() - t), warm


def _sync(device):
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='few updates (smoke check, noisy numbers)')
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--no-compile', action='store_true', help='skip the torch.compile variants')
    ap.add_argument('--variants', default='state,pixels')
    ap.add_argument('--threads', type=int, default=0,
                    help='torch threads for both sides (0 = torch default; 1 is steadier on a busy machine)')
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = {'state': 30 if args.quick else 300, 'pixels': 8 if args.quick else 60}
    batch = {'state': 256, 'pixels': 32}
    compile_ = not args.no_compile and not args.quick
    results = {'device': args.device, 'torch': torch.__version__, 'threads': torch.get_num_threads(),
               'quick': args.quick, 'variants': {}}
    try:
        import d3rlpy
        results['d3rlpy'] = d3rlpy.__version__
    except ImportError:
        print('d3rlpy is not installed: pip install -r requirements-bench.txt -c constraints.txt')
        return 1
    for variant in args.variants.split(','):
        n = 20_000 if variant == 'state' else 2_000
        net1 = variant_config(variant, 1)
        data = make_data(net1, n)
        buf = ours_buffer(net1, data)
        row = {'batch': batch[variant], 'updates': steps[variant], 'transitions': n}
        row['d3rlpy_crr'] = time_d3rlpy(net1, data, batch[variant], steps[variant], args.device)
        for k in (1, len(INTENTIONS)):
            net = variant_config(variant, k)
            for comp in ((False, True) if compile_ else (False,)):
                name = f'chef_crr_k{k}' + ('_compiled' if comp else '')
                ups, warm = time_ours(net, buf, batch[variant], steps[variant], args.device, comp)
                row[name] = ups
                if comp:
                    row[name + '_compile_s'] = warm
        results['variants'][variant] = row
        base = row['d3rlpy_crr']
        print(f'[{variant}] batch {row["batch"]}, {row["updates"]} updates, device {args.device}, '
              f'{results["threads"]} threads')
        print(f'  d3rlpy CRR (1 task)            {base:8.1f} upd/s   1.00x')
        for name, v in list(row.items()):
            if name.startswith('chef_crr') and not name.endswith('_s'):
                tasks = name.split('_k')[1].split('_')[0]
                label = f'chef CRR ({tasks} task{"s" if tasks != "1" else ""}' + \
                        (', compiled)' if 'compiled' in name else ')')
                print(f'  {label:30s} {v:8.1f} upd/s   {v / base:.2f}x')
                row[name + '_ratio'] = v / base
    out = ROOT / 'bench' / 'results' / 'learners.json'
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix('.json.tmp')
    tmp.write_text(json.dumps(results, indent=2))
    os.replace(tmp, out)
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
