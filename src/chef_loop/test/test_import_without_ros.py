"""The loop's algorithm needs no ROS: every chef_loop module but the fleet (the rclpy node that talks
to cells) and status_watch (`chef status`'s watcher node) imports with rclpy blocked, and the stages plan episode jobs without it. Run in a fresh
interpreter, where `sys.modules['rclpy'] = None` makes any rclpy import fail."""

import subprocess
import sys
import textwrap

ROS_FREE = ('chef_loop.config', 'chef_loop.jobs', 'chef_loop.stages', 'chef_loop.explore',
            'chef_loop.sim_eval', 'chef_loop.ablate', 'chef_loop.stats', 'chef_loop.state',
            'chef_loop.summary', 'chef_loop.report', 'chef_loop.report_cmd', 'chef_loop.ray_session',
            'chef_loop.cells', 'chef_loop.cli', 'chef_loop.status_model', 'chef_loop.status_cmd',
            'chef_loop.status_web', 'chef_loop.lab')


def _run_blocked(code: str) -> subprocess.CompletedProcess:
    prelude = "import sys\nsys.modules['rclpy'] = None\n"
    return subprocess.run([sys.executable, '-c', prelude + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)


def test_loop_algorithm_imports_and_plans_without_rclpy():
    out = _run_blocked(f"""
        import importlib
        for name in {ROS_FREE!r}:
            importlib.import_module(name)
        assert 'rclpy.node' not in sys.modules
        from chef_loop.jobs import EpisodeJob, EpisodeOutcome
        from chef_loop.stages import holdout_split
        train, held = holdout_split([f'cell0/ep_{{i}}' for i in range(20)], 0.2)
        assert held and set(train).isdisjoint(held)
        job = EpisodeJob('rgb_test_triplet1', 3)
        assert not EpisodeOutcome(job, 'cell0', None, True).success
        try:
            import chef_loop.fleet                       # the one ROS module: the block is real
        except ImportError:
            print('fleet blocked')
    """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'fleet blocked' in out.stdout
