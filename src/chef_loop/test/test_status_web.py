"""`chef status` against a real cell graph (issue 15.5): `chef run sim` (one fast cell on the wall clock,
scripted expert, recorder) runs an episode job handed out by the loop's own CellFleet (which
publishes FleetProgress on /chef_loop/progress); `chef status --once --json` and `chef status --web`
watch its domain and a run directory written by the real RunState, and headless Chromium (Debian's
`chromium`, installed by `chef test`) loads the page: after its script has polled /status.json, the
DOM shows the cell, running, with the episode id the graph really published, a measured tick rate
and the session's progress; the screenshot is a PNG with more than a blank page in it.
~20-30 s on 2 busy cores (MuJoCo start-up ~10 s, the cell's 20 Hz episode, two Chromium runs)."""

import io
import json
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from std_msgs.msg import String

from chef_contract import topics as T
from chef_contract.events import EpisodeCommand
from chef_contract.testing import CellProbe, ros_env, stop_process, unique_domain_id, wait_for
from chef_loop.jobs import EpisodeJob
from chef_loop.state import RunState

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--disable-dev-shm-usage', '--hide-scrollbars']


def chef(*args):
    return [sys.executable, '-m', 'chef_bringup.cli', *args]


def chromium(tmp_path, *args, timeout=60):
    profile = tmp_path / f'chromium-profile-{time.monotonic_ns()}'
    out = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f'--user-data-dir={profile}', *args], capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def status_json(url):
    with urllib.request.urlopen(url + 'status.json', timeout=5) as r:
        return json.loads(r.read())


class LoopHands:
    """The loop's CellFleet on `domain`, running `jobs` in a background thread as a stage does."""

    def __init__(self, domain, jobs):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from chef_loop.fleet import CellFleet
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain)
        self.fleet = CellFleet(['cell0'], context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.fleet)
        self.fleet.wait_ready(self.executor, 90)
        self.outcomes = None
        self.thread = threading.Thread(target=self._run, args=(jobs,), daemon=True)
        self.thread.start()

    def _run(self, jobs):
        self.outcomes = self.fleet.run(self.executor, jobs, episode_timeout_s=120, max_attempts=1)

    def close(self):
        import rclpy
        self.thread.join(timeout=30)
        self.executor.shutdown()
        self.fleet.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


def test_status_web_page_shows_a_live_cell_in_headless_chromium(tmp_path):
    if CHROMIUM is None:
        pytest.fail('chromium is not installed: `chef test` installs it (scripts/bootstrap.sh --test-deps), '
                    'or apt-get install -y chromium')
    pytest.importorskip('chef_sim.bridge_node')
    from PIL import Image
    domain = unique_domain_id()
    run_dir = tmp_path / 'runs' / 'status'
    state = RunState(run_dir)
    state.mark_done(0, 'collect', {'wall_s': 12.0})
    state.mark_running(0, 'execute')
    (run_dir / 'config.yaml').write_text(f'data_dir: {tmp_path / "data"}\n')
    log = open(tmp_path / 'graph.log', 'w')
    graph = subprocess.Popen(chef('run', 'sim', '--domain', str(domain), 'cells:=1', 'clock:=realtime',
                                  'preset:=fast', 'image_size:=32', 'policy:=scripted', 'record:=true',
                                  f'data_dir:={tmp_path / "data"}'),
                             env=ros_env(domain), stdout=log, stderr=subprocess.STDOUT)
    probe = CellProbe(domain, (T.EPISODE_EVENTS, T.RECORDER_STATUS))
    web = hands = None
    try:
        assert wait_for(lambda: probe.command.get_subscription_count() > 0 and probe.get(T.RECORDER_STATUS)
                        and json.loads(probe.get(T.RECORDER_STATUS)[-1].data)['ready'], 90), 'cell not up'
        hands = LoopHands(domain, [EpisodeJob('rgb_test_triplet2', 11, {
            'stage': 'execute', 'iteration': 0, 'policy_id': 'scripted', 'candidate': 'scripted'})])
        assert wait_for(lambda: any(e.event == 'start' for e in probe.events()), 30), 'no start event'
        episode = next(e for e in probe.events() if e.event == 'start').episode_id

        # the terminal view, one snapshot for scripts
        for _attempt in range(2):      # a loaded machine may take longer than one --wait to discover
            once = subprocess.run(chef('status', '--once', '--json', '--wait', '4', '--domain', str(domain),
                                       '--run', str(run_dir)), env=ros_env(domain), capture_output=True,
                                  text=True, timeout=60)
            assert once.returncode == 0, once.stderr[-2000:]
            snap = json.loads(once.stdout)
            if snap['fleet']:
                break
        cell = {c['cell']: c for c in snap['cells']}['cell0']
        assert (cell['state'], cell['episode_id'], cell['stage'], cell['domain']) == (
            'running', episode, 'execute', domain)
        assert 5.0 < cell['tick_rate_hz'] < 40.0 and cell['tick'] > 0      # a 20 Hz wall-clock cell
        assert cell['recorder_ready'] is True and cell['recorder_drops'] is not None
        assert snap['run']['current']['stage'] == 'execute' and snap['run']['current']['status'] == 'running'
        (session,) = snap['fleet']                                         # the CellFleet's FleetProgress
        assert (session['jobs'], session['done'], session['running'], session['label']) == (
            1, 0, {'cell0': 'rgb_test_triplet2'}, 'scripted')

        # the web page
        web = subprocess.Popen(chef('status', '--web', '--port', '0', '--domain', str(domain), '--run',
                                    str(run_dir)), env=ros_env(domain), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        line = web.stdout.readline()
        m = re.search(r'serving (http://127\.0\.0\.1:\d+/)', line)
        assert m, line
        url = m.group(1)
        assert wait_for(lambda: any(c['tick_rate_hz'] > 0 for c in status_json(url)['cells']), 20)
        dom = chromium(tmp_path, '--virtual-time-budget=5000', '--dump-dom', url)
        row = re.search(r'<tr data-cell="cell0"[^>]*>', dom)
        assert row, dom[-3000:]
        attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', row.group(0)))
        assert attrs['state'] == 'running' and attrs['episode'] == episode, attrs
        assert float(attrs['tick-rate']) > 0
        assert 'iteration 0 execute running' in dom and 'col-rec_drops' in dom
        assert 'session: iteration 0 execute (scripted): 0/1 episodes done' in dom
        png = tmp_path / 'status.png'
        chromium(tmp_path, '--virtual-time-budget=5000', f'--screenshot={png}', '--window-size=1100,500', url)
        image = Image.open(io.BytesIO(png.read_bytes()))
        assert image.format == 'PNG' and image.size == (1100, 500)
        colors = image.convert('RGB').getcolors(maxcolors=1 << 16)
        assert colors is None or len(colors) > 20, 'blank screenshot'      # text, table lines, the state colour
        assert (0xd9, 0xf2, 0xd9) in {c for _, c in (colors or [])} or colors is None   # the running cell's green
        assert all(e.event == 'start' for e in probe.events()), 'the episode ended before the checks'
        probe.command.publish(String(data=EpisodeCommand(op='stop').to_json()))   # the job ends, aborted
        assert wait_for(lambda: hands.outcomes is not None, 30), 'the fleet did not finish its job'
        assert [o.ok for o in hands.outcomes] == [False]
        assert wait_for(lambda: status_json(url)['fleet'][0]['done'] == 1, 10)     # progress republished
        assert status_json(url)['fleet'][0]['failed'] == 1
    finally:
        if web is not None:
            stop_process(web, timeout=10)
        if hands is not None:
            hands.close()
        stop_process(graph, timeout=30)
        probe.close()
        log.close()
    assert graph.returncode == 0, Path(log.name).read_text()[-3000:]
