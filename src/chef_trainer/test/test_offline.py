"""Offline learners on small fixed datasets: Q equals Monte-Carlo returns on a deterministic toy,
BC fits, CRR prefers the better of two logged actions, and train_offline's run directory
(checkpoints, metrics, resume, fine-tune) behaves."""

import json

import numpy as np
import pytest
import torch

from chef_contract.spec import INTENTIONS
from chef_policy.checkpoint import build_policy_from_checkpoint
from chef_policy.networks import NetworkConfig
from chef_trainer.checkpointing import CheckpointDir
from chef_trainer.config import CRRConfig, IQLConfig, LearnerConfig, OptimConfig
from chef_trainer.learners import batch_to_torch, make_learner
from chef_trainer.metrics import read_metrics
from chef_trainer.offline import LearningRun, train_offline
from chef_trainer.replay import ReplayBuffer

KEY = 'sawyer/joints/angle'          # any contract state key: (3, 7) = 21 floats


def small_net(**kw):
    base = dict(obs_mode='state', state_keys=(KEY,), use_wrench=False, use_prev_action=False,
                state_feature_dim=64, actor_torso=(64, 64), critic_torso=(64, 64))
    base.update(kw)
    return NetworkConfig(**base)


def one_hot(t):
    x = np.zeros(21, np.float32)
    x[t] = 1.0
    return x.reshape(3, 7)


def chain_dataset(T=8, discount=0.8, n_step=2, episodes=4):
    """Deterministic chain: state = one-hot(tick), reward of term j at tick t = 1[(t + j) % 3 == 0],
    true terminal after T ticks. Returns (replay, monte-carlo returns [T, 7])."""
    rewards = np.array([[float((t + j) % 3 == 0) for j in range(7)] for t in range(T)], np.float32)
    buf = ReplayBuffer(1000, {KEY: (3, 7)}, n_step=n_step, discount=discount)
    actions = np.tile(np.float32([0.3, -0.2, 0.1, 0.0, 1.0]), (T, 1))
    for _ in range(episodes):
        buf.add_episode({KEY: np.stack([one_hot(t) for t in range(T + 1)])}, actions, rewards,
                        terminal=True)
    mc = np.zeros_like(rewards)
    g = np.zeros(7, np.float32)
    for t in reversed(range(T)):
        g = rewards[t] + discount * g
        mc[t] = g
    return buf, mc, actions


def test_crr_critic_matches_monte_carlo_returns_on_a_deterministic_toy():
    buf, mc, actions = chain_dataset()
    cfg = LearnerConfig(algorithm='crr', network=small_net(), batch_size=64, n_step=2, discount=0.8,
                        next_action_samples=1, target_update_period=0, target_tau=0.1, seed=0,
                        optim=OptimConfig(actor_lr=1e-3, critic_lr=2e-3))
    learner = make_learner(cfg, 'cpu')
    rng = np.random.default_rng(0)
    for _ in range(600):
        learner.update(buf.sample(64, rng))
    obs = {KEY: torch.from_numpy(np.stack([one_hot(t) for t in range(8)]))}
    with torch.no_grad():
        q = learner.critic(obs, torch.from_numpy(actions)).numpy()          # [T, K]
    expected = mc[:, :len(INTENTIONS)]
    assert np.abs(q - expected).max() < 0.05, np.round(np.c_[q, expected], 2)


def expert_dataset(n=512, seed=0):
    """States with a red-object offset; the logged action moves towards it (a fixed dataset)."""
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(4 * n, {KEY: (3, 7)}, n_step=1, discount=0.9)
    offsets = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    for i in range(0, n, 16):
        seg = offsets[i:i + 16]
        frames = np.zeros((len(seg) + 1, 3, 7), np.float32)
        frames[:-1, 0, :3] = seg
        act = np.zeros((len(seg), 5), np.float32)
        act[:, :3] = np.clip(0.8 * seg, -1, 1)
        act[:, 4] = np.where(seg[:, 2] > 0, 1.0, -1.0)
        buf.add_episode({KEY: frames}, act, np.zeros((len(seg), 7), np.float32))
    return buf


def test_bc_loss_falls_and_the_policy_reproduces_the_logged_actions():
    buf = expert_dataset()
    cfg = LearnerConfig(algorithm='bc', network=small_net(), batch_size=128, seed=1,
                        optim=OptimConfig(actor_lr=1e-3))
    learner = make_learner(cfg, 'cpu')
    rng = np.random.default_rng(1)
    first = [learner.update(buf.sample(128, rng))['bc_loss'].item() for _ in range(10)]
    for _ in range(600):
        out = learner.update(buf.sample(128, rng))
    last = [learner.update(buf.sample(128, rng))['bc_loss'].item() for _ in range(10)]
    assert np.mean(last) < np.mean(first) - 2.0
    b = batch_to_torch(buf.sample(256, rng), learner.keys, learner.device)
    with torch.no_grad():
        a = learner.actor.act(b['obs'], INTENTIONS.index('staged'), deterministic=True)
    assert (a[:, :3] - b['action'][:, :3]).abs().mean() < 0.05
    assert (a[:, 4] == b['action'][:, 4]).float().mean() > 0.97
    assert out['policy_std'].item() < 0.2


def bandit_dataset(n=256):
    """One state, two logged actions: vx = +0.6 earns reward 1 on every term, vx = -0.6 earns 0."""
    buf = ReplayBuffer(4 * n, {KEY: (3, 7)}, n_step=1, discount=0.9)
    s = np.zeros((3, 7), np.float32)
    for i in range(n):
        good = i % 2 == 0
        a = np.float32([[0.6 if good else -0.6, 0.0, 0.0, 0.0, 1.0]])
        r = np.full((1, 7), 1.0 if good else 0.0, np.float32)
        buf.add_episode({KEY: np.stack([s, s])}, a, r, terminal=True)
    return buf


@pytest.mark.parametrize('mode,actor_loss,normalize', [('binary', 'nll', False), ('exp', 'nll', False),
                                                      ('exp', 'mse', True), ('binary', 'mse', False)])
def test_crr_prefers_the_better_logged_action_where_bc_averages(mode, actor_loss, normalize):
    buf = bandit_dataset()
    rng = np.random.default_rng(2)
    means = {}
    for alg in ('bc', 'crr'):
        cfg = LearnerConfig(algorithm=alg, network=small_net(), batch_size=64, n_step=1, seed=2,
                            target_update_period=0, target_tau=0.05, actor_loss=actor_loss,
                            crr=CRRConfig(weight_mode=mode, beta=0.1 if not normalize else 0.5,
                                          advantage_samples=8, normalize_advantage=normalize),
                            optim=OptimConfig(actor_lr=1e-3, critic_lr=1e-3))
        learner = make_learner(cfg, 'cpu')
        for _ in range(300):
            learner.update(buf.sample(64, rng))
        with torch.no_grad():
            mean, _, _ = learner.actor({KEY: torch.zeros(1, 3, 7)})
        means[alg] = mean[0, :, 0].numpy()                     # vx mean of every intention
    assert np.all(np.abs(means['bc']) < 0.25), means           # BC: the average of +-0.6
    assert np.all(means['crr'] > 0.4), means                   # CRR: the rewarded action


@pytest.mark.parametrize('actor_loss,critics', [('mse', 1), ('nll', 1), ('mse', 2)])
def test_iql_prefers_the_better_logged_action_and_its_value_is_an_upper_expectile(actor_loss, critics):
    """IQL on the bandit: the actor moves to the rewarded action (BC averages, previous test), and
    V sits between the two actions' Q values, above their mean (expectile 0.9 > 0.5); with two
    critics both learn the same Q and the second one is checkpointed and resumed with the rest."""
    buf = bandit_dataset()
    rng = np.random.default_rng(2)
    cfg = LearnerConfig(algorithm='iql', network=small_net(), batch_size=64, n_step=1, seed=2,
                        target_update_period=0, target_tau=0.05, actor_loss=actor_loss,
                        iql=IQLConfig(expectile=0.9, beta=10.0, critics=critics),
                        optim=OptimConfig(actor_lr=1e-3, critic_lr=1e-3))
    learner = make_learner(cfg, 'cpu')
    for _ in range(400):
        out = learner.update(buf.sample(64, rng))
    assert set(learner.modules()) >= {'actor', 'critic', 'value'} and 'value_opt' in learner.optimisers()
    assert ('critic2' in learner.modules()) == (critics == 2) == ('critic2_opt' in learner.optimisers())
    if critics == 2:
        obs = {KEY: torch.zeros(1, 3, 7)}
        act = torch.tensor([[0.6, 0, 0, 0, 1.0], [-0.6, 0, 0, 0, 1.0]])
        with torch.no_grad():
            q1 = learner.critic({KEY: obs[KEY].expand(2, 3, 7)}, act)
            q2 = learner.critic2({KEY: obs[KEY].expand(2, 3, 7)}, act)
        assert torch.all(q2[0] > q2[1] + 0.5) and torch.allclose(q1, q2, atol=0.3), (q1, q2)
        fresh = make_learner(cfg, 'cpu')
        fresh.load_modules({k: m.state_dict() for k, m in learner.modules().items()})
        for p, q in zip(fresh.target_critic2.parameters(), learner.target_critic2.parameters()):
            assert torch.equal(p, q)
    obs = {KEY: torch.zeros(1, 3, 7)}
    with torch.no_grad():
        mean, _, _ = learner.actor(obs)
        v = learner.value(obs)[0].numpy()
        good = learner.critic(obs, torch.tensor([[0.6, 0, 0, 0, 1.0]]))[0].numpy()
        bad = learner.critic(obs, torch.tensor([[-0.6, 0, 0, 0, 1.0]]))[0].numpy()
    assert np.all(mean[0, :, 0].numpy() > 0.4), mean                 # the rewarded action
    assert np.all(good > bad + 0.5), (good, bad)                     # Q(good) ~ 1, Q(bad) ~ 0
    assert np.all(v > (good + bad) / 2) and np.all(v < good + 0.1), (v, good, bad)
    assert np.isfinite(out['value_loss'].item())


def test_train_offline_run_dir_resume_and_fine_tune(tmp_path):
    buf = expert_dataset(256)
    cfg = LearnerConfig(algorithm='crr', network=small_net(), batch_size=32, log_every=5, seed=3)
    path, summary = train_offline(cfg, buf, steps=20, run_dir=tmp_path / 'a', progress=False,
                                  checkpoint_every=10)
    assert summary['steps'] == 20 and summary['rows'] == 4
    rows = read_metrics(tmp_path / 'a' / 'metrics.csv')
    assert [r['step'] for r in rows] == [5, 10, 15, 20]
    assert {'critic_loss', 'actor_loss', 'q_mean', 'adv_mean', 'weight_mean',
            'q_per_intention/staged'} <= set(rows[0])
    latest = json.loads((tmp_path / 'a' / 'latest.json').read_text())
    assert latest['path'] == path and latest['step'] == 20
    # the policy node can load the actor of a learner checkpoint
    actor, net, sha = build_policy_from_checkpoint(path)
    assert sha == latest['sha256'] and net.to_dict() == cfg.network.to_dict()
    # same run_dir again: resumes at 20 and continues to 30 (the step count is not restarted)
    path2, summary2 = train_offline(cfg, buf, steps=30, run_dir=tmp_path / 'a', progress=False)
    assert summary2['steps'] == 30 and summary2['started_from'].startswith('resumed:')
    assert [r['step'] for r in read_metrics(tmp_path / 'a' / 'metrics.csv')][-2:] == [25, 30]
    # fine-tune: a fresh run dir starting from those weights, step count from 0
    run = LearningRun(cfg, tmp_path / 'b', buf, init_checkpoint=path2)
    ref = torch.load(path2, weights_only=True)['modules']['actor']
    assert run.steps == 0 and run.started_from.startswith('init:')
    assert all(torch.equal(v, ref[k]) for k, v in run.learner.actor.state_dict().items())
    run.close()


def test_resume_reproduces_an_uninterrupted_run_exactly(tmp_path):
    buf = expert_dataset(256)
    cfg = LearnerConfig(algorithm='crr', network=small_net(), batch_size=32, seed=4)

    def params(run):
        return torch.cat([p.detach().flatten() for p in run.learner.actor.parameters()]
                         + [p.detach().flatten() for p in run.learner.critic.parameters()])

    straight = LearningRun(cfg, tmp_path / 'straight', buf)
    straight.run(16, progress=False)
    first = LearningRun(cfg, tmp_path / 'split', buf)
    first.run(8, progress=False)
    del first                                  # as if the process died after its checkpoint
    torch.manual_seed(12345)                   # a restarted process has other global RNG state
    second = LearningRun(cfg, tmp_path / 'split', buf)
    assert second.steps == 8
    second.run(16, progress=False)
    assert torch.equal(params(straight), params(second))
    assert CheckpointDir(tmp_path / 'split').latest()['step'] == 16


def test_metrics_never_hold_a_step_twice_after_kills(tmp_path):
    """A run killed before its first checkpoint starts metrics.csv afresh; one killed after a
    checkpoint drops the rows logged past it (and a row the kill cut short) and continues there."""
    buf = expert_dataset(256)
    cfg = LearnerConfig(algorithm='crr', network=small_net(), batch_size=32, log_every=5, seed=3)
    metrics = tmp_path / 'a' / 'metrics.csv'
    first = LearningRun(cfg, tmp_path / 'a', buf, checkpoint_every=20)
    for _ in range(12):
        first.update()
    first.close()                              # as if killed at update 12: rows 5, 10, no checkpoint
    assert [r['step'] for r in read_metrics(metrics)] == [5, 10]
    second = LearningRun(cfg, tmp_path / 'a', buf, checkpoint_every=20)
    assert second.steps == 0 and read_metrics(metrics) == []
    for _ in range(33):
        second.update()
    second.close()                             # killed at 33: checkpoint 20, rows up to 30 ...
    with open(metrics, 'a') as f:
        f.write('35,0.5,1.2')                   # ... and a row cut short mid-write
    third = LearningRun(cfg, tmp_path / 'a', buf, checkpoint_every=20)
    assert third.steps == 20 and third.started_from.endswith('step_000000020.pt')
    assert [r['step'] for r in read_metrics(metrics)] == [5, 10, 15, 20]
    third.run(40, progress=False)
    third.close()
    assert [r['step'] for r in read_metrics(metrics)] == list(range(5, 41, 5))


def test_state_inputs_are_standardised_from_the_training_data_and_travel_with_the_weights(tmp_path):
    """Raw benchmark inputs span 1e-3 to 255; a run from scratch fits per-feature mean/std on its
    data once, every network (online and target) uses them, checkpoints carry them, fine-tuning and
    the policy node keep the parent's."""
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(2000, {KEY: (3, 7)}, n_step=1, discount=0.9)
    scale = np.float32([255.0, 1e-2, 3.0, 80.0, 0.05, 1.0, 7.0])
    for _ in range(8):
        frames = (rng.normal(size=(41, 3, 7)) * scale + 100.0 * (scale > 1)).astype(np.float32)
        buf.add_episode({KEY: frames}, rng.uniform(-1, 1, (40, 5)).astype(np.float32),
                        rng.uniform(0, 1, (40, 7)).astype(np.float32))
    cfg = LearnerConfig(algorithm='crr', network=small_net(), batch_size=32, log_every=5, seed=3)
    run = LearningRun(cfg, tmp_path / 'a', buf)
    assert not run.learner.state_statistics_ready
    run.update()
    enc = run.learner.critic.encoder
    assert run.learner.state_statistics_ready
    batch = buf.sample(2048, np.random.default_rng(1))
    x = enc.state_vector(batch_to_torch(batch, run.learner.keys, run.learner.device)['obs'])
    z = (x - enc.state_mean) / enc.state_std
    assert torch.allclose(z.mean(0), torch.zeros(21), atol=0.15) and torch.allclose(z.std(0), torch.ones(21), atol=0.15)
    for m in run.learner.modules().values():      # targets too
        assert torch.equal(m.encoder.state_mean, run.learner.actor.encoder.state_mean)
    info = run.checkpoint()
    run.close()
    actor, net, _ = build_policy_from_checkpoint(info['path'])
    assert torch.equal(actor.encoder.state_std, enc.state_std) and bool(actor.encoder.state_stats_ready)
    # fine-tuning starts from the parent's statistics; it does not refit them on its own data
    ft = LearningRun(cfg, tmp_path / 'b', expert_dataset(256), init_checkpoint=info['path'])
    ft.update()
    assert torch.equal(ft.learner.actor.encoder.state_mean, enc.state_mean)
    ft.close()
    # switched off: the identity
    off = LearningRun(LearnerConfig(algorithm='bc', network=small_net(normalize_state=False), batch_size=32),
                      tmp_path / 'c', buf)
    off.update()
    assert not off.learner.state_statistics_ready and torch.equal(off.learner.actor.encoder.state_std, torch.ones(21))
    off.close()


def test_mse_actor_loss_fits_the_mean_and_its_spread_never_steers_the_mean():
    """actor_loss 'mse': the arm mean is fit by squared error; the spread's NLL trains only the std
    head's weights (zero gradient on the torso and on the mean outputs)."""
    from chef_trainer import losses as L
    cfg = LearnerConfig(algorithm='bc', network=small_net(), batch_size=128, seed=3, actor_loss='mse',
                        optim=OptimConfig(actor_lr=1e-3))
    learner = make_learner(cfg, 'cpu')
    buf = expert_dataset()
    rng = np.random.default_rng(3)
    b = batch_to_torch(buf.sample(128, rng), learner.keys, learner.device)
    mean, std, logits, std_det = learner.actor.forward_with_detached_std(b['obs'])
    spread_only = -L.gaussian_log_prob(mean.detach(), std_det, b['action'][:, None, :4]).mean()
    learner.actor.zero_grad()
    spread_only.backward()
    torso_grads = [p.grad for p in learner.actor.torso.parameters()]
    assert all(g is None or g.abs().max() == 0 for g in torso_grads)
    head_grad = learner.actor.head.out.weight.grad                      # [K, in, 10]
    assert head_grad[..., :4].abs().max() == 0 and head_grad[..., 8:].abs().max() == 0
    assert head_grad[..., 4:8].abs().max() > 0
    for _ in range(600):
        learner.update(buf.sample(128, rng))
    with torch.no_grad():
        a = learner.actor.act(b['obs'], INTENTIONS.index('staged'), deterministic=True)
    assert (a[:, :3] - b['action'][:, :3]).abs().mean() < 0.05
    assert (a[:, 4] == b['action'][:, 4]).float().mean() > 0.97


def test_normalised_advantages_make_the_crr_weights_independent_of_the_q_scale():
    from chef_trainer import losses as L
    adv = torch.tensor([[0.1, -2.0], [-0.1, 0.5], [0.05, 1.5]])
    w1 = L.crr_weights(L.normalize_advantage(adv), 'exp', 1.0, 20.0)
    w2 = L.crr_weights(L.normalize_advantage(40.0 * adv), 'exp', 1.0, 20.0)
    assert torch.allclose(w1, w2)
    assert torch.allclose(L.normalize_advantage(adv).std(0), torch.ones(2))
    assert w1[0, 0] > w1[1, 0] and w1[2, 1] > w1[0, 1]                 # order kept per intention


def test_train_on_successful_keeps_only_episodes_that_succeeded():
    from types import SimpleNamespace

    from chef_trainer.config import LearnerConfig
    from chef_trainer.offline import select_episodes
    recs = [SimpleNamespace(id=str(i), metadata={'success': s}) for i, s in enumerate([True, False, None, True])]
    assert [r.id for r in select_episodes(recs, LearnerConfig(algorithm='bc'))] == ['0', '1', '2', '3']
    assert [r.id for r in select_episodes(recs, LearnerConfig(algorithm='bc', train_on='successful'))] == ['0', '3']
    with pytest.raises(ValueError, match='none of the 2 episode'):
        select_episodes(recs[1:3], LearnerConfig(algorithm='bc', train_on='successful'))


def test_state_noise_perturbs_the_actor_only_while_training():
    """learner.state_noise_std: the actor's standardised inputs get fresh noise in training mode (two
    forward passes differ), none when acting (eval mode: identical, deterministic); the critic and
    the target actor never get it; 0 (the default) adds nothing."""
    buf = expert_dataset()
    rng = np.random.default_rng(0)
    for std, differs in ((0.3, True), (0.0, False)):
        learner = make_learner(LearnerConfig(algorithm='iql', network=small_net(), n_step=1, batch_size=32,
                                             state_noise_std=std), 'cpu')
        learner.update(buf.sample(32, rng))
        obs = batch_to_torch(buf.sample(16, rng), learner.keys, learner.device)['obs']
        with torch.no_grad():
            a, b = learner.actor(obs)[0], learner.actor(obs)[0]
            assert (not torch.equal(a, b)) == differs
            assert torch.equal(learner.target_actor(obs)[0], learner.target_actor(obs)[0])
            assert torch.equal(learner.critic.encoder(obs), learner.critic.encoder(obs))
            learner.actor.eval()
            assert torch.equal(learner.actor(obs)[0], learner.actor(obs)[0])
    from chef_contract.config import ConfigError
    from chef_trainer.config import load_learner_config
    with pytest.raises(ConfigError, match='state_noise_std'):
        load_learner_config(None, ['learner.state_noise_std=-0.1'])


def chunk_batch(horizon, T=8, past_end=-0.9):
    """A chain of T ticks (state = one-hot(tick)) whose logged command at tick t is
    a_t = (0.8 - 0.2 t, 0.1 t - 0.4, 0, 0, +-1); chunks a_t..a_{t+H-1}, and past the end the
    command `past_end` everywhere (masked out)."""
    arm = lambda t: [0.8 - 0.2 * t, 0.1 * t - 0.4, 0.0, 0.0, 1.0 if t % 2 else -1.0]
    obs = np.stack([one_hot(t) for t in range(T)])
    chunk = np.array([[arm(t + h) if t + h < T else [past_end] * 5 for h in range(horizon)]
                      for t in range(T)], np.float32)
    mask = np.array([[t + h < T for h in range(horizon)] for t in range(T)])
    return {'obs': {KEY: obs}, 'next_obs': {KEY: obs}, 'action': chunk[:, 0].copy(),
            'rewards': np.zeros((T, 7), np.float32), 'discount': np.full(T, 0.9, np.float32),
            'action_chunk': chunk, 'chunk_mask': mask}


@pytest.mark.parametrize('algorithm', ['bc', 'iql'])
def test_action_chunking_actor_learns_the_next_commands_and_ignores_masked_ones(algorithm):
    def trained(past_end):
        cfg = LearnerConfig(algorithm=algorithm, network=small_net(action_horizon=3), batch_size=8, seed=0,
                            optim=OptimConfig(actor_lr=3e-3), iql=IQLConfig(beta=0.0))
        torch.manual_seed(0)
        learner = make_learner(cfg, 'cpu')
        batch = chunk_batch(3, past_end=past_end)
        for _ in range(400):
            learner.update(batch)
        return learner, batch

    learner, batch = trained(-0.9)
    b = batch_to_torch(batch, learner.keys, learner.device)
    with torch.no_grad():
        mean, _, logits = learner.actor.forward_chunk(b['obs'])              # [T, K, H, .]
        first, _, first_logits = learner.actor(b['obs'])
    k = INTENTIONS.index('staged')
    held = b['chunk_mask']
    err = (mean[:, k, :, :2] - b['action_chunk'][:, :, :2]).abs()
    assert err[held].max() < 0.08, err                # every real future command is fit
    grip = logits[:, k].argmax(-1) * 2 - 1
    assert (grip[held] == b['action_chunk'][..., 4][held]).all()
    torch.testing.assert_close(first, mean[:, :, 0])  # this tick's command is step 0 of the chunk
    torch.testing.assert_close(first_logits, logits[:, :, 0])
    other, _ = trained(0.9)                           # other commands past the end: the same actor
    for p, q in zip(learner.actor.parameters(), other.actor.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    no_chunk = {k: v for k, v in batch.items() if k not in ('action_chunk', 'chunk_mask')}
    with pytest.raises(ValueError, match='action_chunk'):
        learner.update(no_chunk)


def test_an_online_learner_starts_from_a_chunking_policys_first_step_and_nothing_else_mixes(tmp_path):
    from chef_policy.checkpoint import CheckpointError
    from chef_trainer.checkpointing import load_learner_checkpoint, save_learner_checkpoint
    chunking = make_learner(LearnerConfig(algorithm='iql', network=small_net(action_horizon=4)), 'cpu')
    path = tmp_path / 'chunks.pt'
    save_learner_checkpoint(path, chunking)
    online = make_learner(LearnerConfig(algorithm='mpo', network=small_net()), 'cpu')
    load_learner_checkpoint(path, online, weights_only=True)          # offline-to-online seeding
    obs = {KEY: torch.randn(4, 3, 7)}
    with torch.no_grad():
        torch.testing.assert_close(online.actor(obs)[0], chunking.actor(obs)[0])
        torch.testing.assert_close(online.critic(obs, torch.zeros(4, 5)), chunking.critic(obs, torch.zeros(4, 5)))
    with pytest.raises(CheckpointError, match='action_horizon'):      # resuming is exact
        load_learner_checkpoint(path, make_learner(LearnerConfig(algorithm='iql', network=small_net()), 'cpu'))
    save_learner_checkpoint(tmp_path / 'one.pt', online)
    with pytest.raises(CheckpointError, match='action_horizon'):      # no steps to invent
        load_learner_checkpoint(tmp_path / 'one.pt', chunking, weights_only=True)
