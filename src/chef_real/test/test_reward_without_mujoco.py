"""A real cell's rewards need no simulator: the pixel reward (estimator, reward terms, its node)
imports and computes every contract reward term with MuJoCo, dm_control and chef_sim blocked
(fresh interpreter, `sys.modules[name] = None` makes those imports fail)."""

import subprocess
import sys
import textwrap

BLOCKED = ('mujoco', 'dm_control', 'chef_sim')


def test_pixel_reward_imports_and_computes_terms_without_mujoco():
    code = f"""
        import sys
        for name in {BLOCKED!r}:
            sys.modules[name] = None
        import chef_real.cameras, chef_real.pixel_objects, chef_real.pixel_reward_node
        from chef_contract.spec import REWARD_TERMS
        from chef_real.pixel_reward import terms_from_positions
        blue = (0.60, 0.00, 0.075)
        red = (0.60, 0.00, 0.115)                           # resting on blue
        terms = terms_from_positions(red, blue, (0.60, 0.0, 0.30), 0.0, 1)
        assert set(terms) == set(REWARD_TERMS), terms
        assert terms['stack'] == 1.0 and terms['sparse_success'] == 1.0, terms
        try:
            import chef_sim.env                             # the block is real
        except ImportError:
            print('sim blocked')
    """
    out = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'sim blocked' in out.stdout
