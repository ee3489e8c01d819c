"""`chef run` across processes: messages flow over DDS, SIGINT stops with 0, a failing required
node stops the graph with its exit code and a clear message."""

import json
import signal
import subprocess
import time


from chef_contract.testing import executable, ros_env, unique_domain_id


def chef(*args, domain):
    return subprocess.Popen([executable('chef_bringup', 'chef'), *args], env=ros_env(domain),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_node_graph_talks_and_stops_cleanly_on_sigint(tmp_path):
    report = tmp_path / 'count.json'
    proc = chef('run', 'selfcheck', f'report_file:={report}', 'rate_hz:=50', domain=unique_domain_id())
    deadline = time.monotonic() + 30
    received = 0
    while time.monotonic() < deadline and received < 75:
        time.sleep(0.2)
        if report.exists():
            received = json.loads(report.read_text())['received']
        assert proc.poll() is None, proc.stdout.read()
    assert received >= 75
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert '[/dds_probe_sub]' in out          # output is prefixed per node
    assert 'received SIGINT' in out


def test_failing_required_node_stops_graph_with_clear_message():
    proc = chef('run', 'selfcheck', 'fail_after_s:=1.0', domain=unique_domain_id())
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3, out
    assert 'required node /dds_probe_pub failed (exit code 3)' in out


def test_unknown_graph_argument_is_a_usage_error():
    proc = chef('run', 'selfcheck', 'rate:=3', domain=unique_domain_id())
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "no argument(s) ['rate']" in out


def test_killed_runner_leaves_no_orphan_nodes():
    import psutil
    proc = chef('run', 'selfcheck', domain=unique_domain_id())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        kids = [c for c in psutil.Process(proc.pid).children(recursive=True)
                if 'dds_probe' in ' '.join(c.cmdline())]
        if len(kids) == 2:
            break
        time.sleep(0.2)
    assert len(kids) == 2
    # the chef wrapper execs python; kill the runner process itself with SIGKILL
    proc.kill()
    proc.wait(timeout=10)
    gone, alive = psutil.wait_procs(kids, timeout=15)
    assert not alive, [p.cmdline() for p in alive]
