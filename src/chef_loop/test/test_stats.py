import math

import pytest

from chef_loop.stats import mean_over_triplets, success_table, wilson


def test_wilson_matches_reference_values():
    # Reference values: Wilson (1927) score interval, z = 1.96 (Agresti & Coull 1998, Table 1 style).
    r = wilson(8, 10)
    assert math.isclose(r.low, 0.4902, abs_tol=5e-4) and math.isclose(r.high, 0.9433, abs_tol=5e-4)
    r0 = wilson(0, 20)
    assert r0.low == 0.0 and math.isclose(r0.high, 0.1611, abs_tol=5e-4)
    rn = wilson(20, 20)
    assert rn.high == 1.0 and math.isclose(rn.low, 0.8389, abs_tol=5e-4)


def test_wilson_interval_shrinks_with_more_trials_and_contains_estimate():
    small, big = wilson(5, 10), wilson(500, 1000)
    assert big.high - big.low < small.high - small.low
    for r in (small, big, wilson(1, 3)):
        assert r.low <= r.value <= r.high


def test_wilson_holds_the_rate_exactly_at_every_count():
    # 10/10 once gave high = 1 - 1e-16 < rate, and the report's error bars refused the negative gap
    for n in range(1, 201):
        for k in range(n + 1):
            r = wilson(k, n)
            assert 0.0 <= r.low <= r.value <= r.high <= 1.0, (k, n, r)


def test_invalid_counts_rejected():
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_success_table_pools_and_means():
    outcomes = [('t1', True), ('t1', False), ('t2', True), ('t2', True)]
    table = success_table(outcomes)
    assert table['t1'].value == 0.5 and table['t2'].value == 1.0
    assert table['mean'].successes == 3 and table['mean'].trials == 4
    assert mean_over_triplets(table, ['t1', 't2']) == 0.75


def test_trials_are_distinct_and_seeded(tmp_path):
    from chef_loop.config import load_loop_config
    from chef_loop.stages import ChefRun
    cfg = load_loop_config('default', [f'runs_dir={tmp_path}', 'explore.trials=4',
                                       'explore.search_space={a: {choice: [1, 2]}, b: {choice: [x, y]}}'])
    run = ChefRun(cfg, progress=False)
    trials = run.sample_trials(0)
    assert len({tuple(sorted(t['params'].items())) for t in trials}) == 4     # the whole 2x2 grid
    assert run.sample_trials(0) == trials                                      # seeded
    cfg2 = load_loop_config('default', [f'runs_dir={tmp_path}', 'name=other', 'explore.trials=6',
                                        'explore.search_space={learner.crr.weight_mode: {choice: [exp, binary]}, '
                                        'learner.optim.actor_lr: {loguniform: [1.0e-4, 1.0e-3]}}'])
    t2 = ChefRun(cfg2, progress=False).sample_trials(0)
    assert len({str(t['params']) for t in t2}) == 6
    lrs = [t['params']['learner.optim.actor_lr'] for t in t2]
    assert all(1e-4 <= x <= 1e-3 for x in lrs)


def test_trial_updates_follow_the_trials_algorithm():
    from chef_contract.config import ConfigError
    from chef_loop.config import load_loop_config, trial_steps
    from chef_loop.explore import trial_overrides
    cfg = load_loop_config('default', ['explore.steps=100', 'explore.steps_per_algorithm={bc: 400}'])
    e = cfg.explore
    by_algo = {algo: trial_steps(e, list(e.learner_overrides) + trial_overrides({'learner.algorithm': algo}))
               for algo in ('iql', 'bc')}
    assert by_algo == {'iql': 100, 'bc': 400}
    assert trial_steps(e, list(e.learner_overrides)) == 100             # iql_state.yaml's own algorithm
    bc_base = load_loop_config('default', ['explore.steps=100', 'explore.steps_per_algorithm={bc: 400}',
                                           'explore.learner_config=bc_state.yaml', 'explore.search_space={}'])
    assert trial_steps(bc_base.explore, []) == 400
    with pytest.raises(ConfigError, match='steps_per_algorithm: unknown offline algorithm'):
        load_loop_config('default', ['explore.steps_per_algorithm={sac: 10}'])
    with pytest.raises(ConfigError, match='steps_per_algorithm.bc'):
        load_loop_config('default', ['explore.steps_per_algorithm={bc: 0}'])


def test_report_plot_draws_all_and_none_successes(tmp_path):
    # the report's rows come from success_table (stage_rows); at 10/10 wilson once gave
    # high = 1 - 1e-16 < rate and the error bars refused the negative gap
    from chef_loop.report import success_plot
    outcomes = [('rgb_test_triplet1', True)] * 10 + [('rgb_test_triplet2', False)] * 10
    success_plot([('run', success_table(outcomes), None)], tmp_path / 'success.png')
    assert (tmp_path / 'success.png').stat().st_size > 0
