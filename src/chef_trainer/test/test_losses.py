"""Every loss of chef_trainer.losses on a tiny case whose value is worked out by hand."""

import math

import pytest
import torch

from chef_contract.spec import INTENTIONS, REWARD_TERMS
from chef_policy import networks
from chef_trainer import losses as L


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def test_intention_rewards_are_the_logged_terms_of_the_same_name():
    cols = L.intention_columns()
    assert [REWARD_TERMS[c] for c in cols] == list(INTENTIONS)
    terms = t([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]])          # 5 stages, staged, sparse_success
    assert torch.allclose(L.intention_rewards(terms, cols), t([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]]))
    with pytest.raises(ValueError, match='no logged reward term'):
        L.intention_columns(('reach_grasp', 'dance'))


def test_n_step_target():
    # y = R + discount * V: [1 + 0.5 * 4, 2 + 0.5 * 6]; a terminal row (discount 0) keeps R only
    y = L.n_step_target(t([[1.0, 2.0], [1.0, 2.0]]), t([0.5, 0.0]), t([[4.0, 6.0], [4.0, 6.0]]))
    assert torch.allclose(y, t([[3.0, 5.0], [1.0, 2.0]]))


def test_td_loss_mse_and_huber():
    q = t([[1.0, 2.0]]).requires_grad_()
    loss, per_k = L.td_loss(q, t([[0.0, 0.0]]), 'mse')
    assert torch.allclose(per_k, t([0.5, 2.0]))                  # 0.5 * err^2
    assert loss.item() == pytest.approx(1.25)
    loss.backward()
    assert torch.allclose(q.grad, t([[0.5, 1.0]]))               # d/dq mean(0.5 e^2) = e / 2
    _, per_k = L.td_loss(t([[0.5, 2.0]]), t([[0.0, 0.0]]), 'huber')
    assert torch.allclose(per_k, t([0.125, 1.5]))                # 0.5 e^2 if |e| < 1 else |e| - 0.5
    target = t([[0.0, 0.0]]).requires_grad_()
    L.td_loss(t([[1.0, 1.0]]), target)[0]                         # the target is never differentiated
    assert target.grad is None


def test_advantage_mean_and_max_baselines():
    q_data = t([[1.0]])
    q_samples = t([[[0.0], [2.0], [4.0]]])                        # [B=1, N=3, K=1]
    assert L.advantage(q_data, q_samples, 'mean').item() == pytest.approx(-1.0)
    assert L.advantage(q_data, q_samples, 'max').item() == pytest.approx(-3.0)


def test_crr_binary_and_exponential_weights():
    adv = t([-1.0, 0.0, 0.5])
    assert torch.equal(L.crr_weights(adv, 'binary'), t([0.0, 0.0, 1.0]))
    w = L.crr_weights(t([0.0, 2.0, 100.0]), 'exp', beta=2.0, max_weight=20.0)
    assert torch.allclose(w, t([1.0, math.e, 20.0]))
    a = t([1.0]).requires_grad_()
    assert not L.crr_weights(a, 'exp').requires_grad


def test_weighted_nll_and_bc():
    lp = t([[-1.0, -2.0]]).requires_grad_()
    loss = L.weighted_nll(lp, t([[1.0, 0.5]]))
    assert loss.item() == pytest.approx(1.0)                      # -mean(-1 * 1, -2 * 0.5)
    loss.backward()
    assert torch.allclose(lp.grad, t([[-0.5, -0.25]]))
    assert L.bc_nll(t([[-1.0, -3.0]])).item() == pytest.approx(2.0)


def test_log_prob_by_hand_and_equal_to_chef_policy():
    mean, std = torch.zeros(1, 1, 4), torch.ones(1, 1, 4)
    logits = torch.log(t([[[0.25, 0.75]]]))                       # p(close) = 0.75
    action = t([[0.0, 0.0, 0.0, 0.0, 0.3]])                       # gripper > 0 -> close
    lp = L.action_log_prob(mean, std, logits, action)
    assert lp.item() == pytest.approx(-2 * math.log(2 * math.pi) + math.log(0.75), rel=1e-6)
    action_open = t([[0.0, 0.0, 0.0, 0.0, 0.0]])                  # exactly 0 -> open
    assert L.action_log_prob(mean, std, logits, action_open).item() == pytest.approx(
        -2 * math.log(2 * math.pi) + math.log(0.25), rel=1e-6)
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(5, 6, 4, generator=g).tanh()
    std = torch.rand(5, 6, 4, generator=g) + 0.1
    logits = torch.randn(5, 6, 2, generator=g)
    action = torch.rand(5, 5, generator=g) * 2 - 1
    assert torch.allclose(L.action_log_prob(mean, std, logits, action),
                          networks.action_log_prob(mean, std, logits, action), atol=1e-5)


def test_sample_actions_shapes_ranges_and_gripper_frequency():
    g = torch.Generator().manual_seed(0)
    mean = torch.zeros(2, 3, 4)
    std = torch.full((2, 3, 4), 5.0)                               # wide: clipping must happen
    logits = torch.log(t([0.2, 0.8])).expand(2, 3, 2)
    a = L.sample_actions(mean, std, logits, 4000, generator=g)
    assert a.shape == (2, 4000, 3, 5)
    assert a[..., :4].abs().max() <= 1.0
    assert set(a[..., 4].unique().tolist()) == {-1.0, 1.0}
    assert (a[..., 4] > 0).float().mean().item() == pytest.approx(0.8, abs=0.02)


def test_mpo_estep_weights_and_dual_by_hand():
    q = t([[[0.0], [math.log(3.0)]]])                              # [B=1, N=2, K=1]
    temp = t([1.0]).requires_grad_()
    w, dual = L.mpo_estep(q, temp, epsilon=0.1)
    assert torch.allclose(w.squeeze(), t([0.25, 0.75]))           # softmax(0, log 3)
    assert dual.item() == pytest.approx(0.1 + math.log(2.0))      # eps + log mean exp(q)
    dual.backward()
    # dg/deta = eps + log mean exp(q/eta) - sum_j w_j q_j / eta
    assert temp.grad.item() == pytest.approx(0.1 + math.log(2.0) - 0.75 * math.log(3.0), rel=1e-5)


def test_mpo_temperature_dual_reaches_its_kl_bound():
    """Minimising the dual makes KL(softmax(Q / eta) || uniform) equal epsilon."""
    g = torch.Generator().manual_seed(1)
    q = torch.randn(64, 20, 1, generator=g) * 3.0
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([param], lr=0.05)
    for _ in range(2000):
        opt.zero_grad()
        _, dual = L.mpo_estep(q, torch.nn.functional.softplus(param) + 1e-8, epsilon=0.1)
        dual.backward()
        opt.step()
    w, _ = L.mpo_estep(q, torch.nn.functional.softplus(param) + 1e-8, epsilon=0.1)
    kl = (w * torch.log(w * 20 + 1e-12)).sum(1).mean()
    assert kl.item() == pytest.approx(0.1, abs=0.01)


def test_gaussian_and_categorical_kl():
    z, o = t([0.0]), t([1.0])
    assert L.gaussian_kl(z, o, z, o).item() == pytest.approx(0.0)
    assert L.gaussian_kl(z, o, o, o).item() == pytest.approx(0.5)              # (mu diff)^2 / 2
    assert L.gaussian_kl(z, o, z, t([2.0])).item() == pytest.approx(math.log(2) + 1 / 8 - 0.5)
    kl = L.categorical_kl(torch.log(t([0.5, 0.5])), torch.log(t([0.25, 0.75])))
    assert kl.item() == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3))


def test_mpo_mstep_moves_towards_the_weighted_sample_and_duals_have_the_right_sign():
    mean = torch.zeros(1, 1, 4, requires_grad=True)
    std_param = torch.zeros(1, 1, 4, requires_grad=True)
    logits = torch.zeros(1, 1, 2, requires_grad=True)
    target = (torch.zeros(1, 1, 4), torch.ones(1, 1, 4), torch.zeros(1, 1, 2))
    good = t([0.5, -0.5, 0.2, 0.0, 1.0])
    bad = t([-0.5, 0.5, -0.2, 0.0, -1.0])
    samples = torch.stack([good, bad]).view(1, 2, 1, 5)
    weights = t([1.0, 0.0]).view(1, 2, 1)
    alpha = torch.full((3, 1), 0.5, requires_grad=True)
    loss, stats = L.mpo_mstep((mean, std_param.exp(), logits), target, samples, weights, alpha,
                              eps_mean=0.1, eps_std=0.1, eps_cat=0.1)
    # online == target: every KL is 0, so alpha's gradient is eps - KL = +eps (alpha shrinks)
    assert stats['kl_mean'].item() == pytest.approx(0.0, abs=1e-7)
    loss.backward()
    assert torch.allclose(alpha.grad, torch.full((3, 1), 0.1))
    # gradient descent moves the mean towards the good sample and the gripper towards close
    assert torch.all(torch.sign(-mean.grad[0, 0, :3]) == torch.sign(good[:3]))
    assert -logits.grad[0, 0, 1] > 0 > -logits.grad[0, 0, 0]


def test_q_of_policy_samples_equals_per_action_critic_calls():
    from chef_policy.networks import MultiTaskCritic, NetworkConfig, dummy_observation
    from chef_trainer.learners import q_of_policy_samples
    net = NetworkConfig(obs_mode='state')
    critic = MultiTaskCritic(net)
    g = torch.Generator().manual_seed(3)
    obs = {k: torch.randn(v.shape, generator=g) for k, v in dummy_observation(net, 4).items()}
    samples = torch.rand(4, 3, 6, 5, generator=g) * 2 - 1                 # [B, N, K, 5]
    q = q_of_policy_samples(critic, critic.encoder(obs), samples)          # [B, N, K]
    for n in range(3):
        for k in range(6):
            assert torch.allclose(q[:, n, k], critic(obs, samples[:, n, k])[:, k], atol=1e-5)


def test_pose_positions_only_ignores_quaternions():
    from chef_policy.networks import MultiTaskActor, NetworkConfig
    net = NetworkConfig(obs_mode='state', state_keys=('rgb30_red/to_pinch', 'sawyer/joints/angle'),
                        pose_positions_only=True)
    assert net.state_dim == 3 * 3 + 3 * 7                       # joints keep all 7 values
    actor = MultiTaskActor(net)
    g = torch.Generator().manual_seed(0)
    obs = {'rgb30_red/to_pinch': torch.randn(2, 3, 7, generator=g),
           'sawyer/joints/angle': torch.randn(2, 3, 7, generator=g)}
    other_quat = {k: v.clone() for k, v in obs.items()}
    other_quat['rgb30_red/to_pinch'][..., 3:] += 1.0
    other_pos = {k: v.clone() for k, v in obs.items()}
    other_pos['rgb30_red/to_pinch'][..., :3] += 0.1
    assert torch.equal(actor(obs)[0], actor(other_quat)[0])
    assert not torch.allclose(actor(obs)[0], actor(other_pos)[0])


def test_prev_gripper_only_reads_the_last_entry_of_the_previous_command():
    from chef_policy.networks import MultiTaskActor, NetworkConfig
    net = NetworkConfig(obs_mode='state', state_keys=('action/environment', 'sawyer/joints/angle'),
                        prev_gripper_only=True)
    assert net.state_dim == 2 * 1 + 3 * 7                       # (2, 8) stacked commands -> (2, 1)
    actor = MultiTaskActor(net)
    g = torch.Generator().manual_seed(0)
    obs = {'action/environment': torch.randn(2, 2, 8, generator=g),
           'sawyer/joints/angle': torch.randn(2, 3, 7, generator=g)}
    other_joints = {k: v.clone() for k, v in obs.items()}
    other_joints['action/environment'][..., :7] += 1.0
    other_grip = {k: v.clone() for k, v in obs.items()}
    other_grip['action/environment'][..., 7] += 1.0
    assert torch.equal(actor(obs)[0], actor(other_joints)[0])
    assert not torch.allclose(actor(obs)[0], actor(other_grip)[0])
