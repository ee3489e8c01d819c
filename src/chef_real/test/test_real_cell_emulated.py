"""The real-cell graph end to end on the MuJoCo stand-in for its drivers: `chef run real hardware:=mujoco`.

One cell, started exactly as a user starts it (config/graphs/real.yaml through `chef run`): chef_sim's
hardware_emulator and servo_emulator in place of ros2_control, MoveIt Servo and the camera drivers;
the real graph's camera_adapter, state_adapter, pixel_reward, episode_manager (reset_mode service),
safety_filter, policy and recorder, unchanged. The policy is the scripted expert; it acts on the
emulator's true object poses (policy_object_poses:=tracker/object_poses, as a lab's tracker would
give them: the pixel reward estimates no orientation, which the expert needs to align its fingers),
while the rewards and success the recorder stores come from the pixel reward node. Two full
(400-tick) episodes, then:

* the graph brings up the contract topics on the drivers' interfaces (the twin of test_real_launch.py's
  dry run, which needs launch_testing and ros2_control and skips here);
* both bags are recorded and complete (every one of the 400 ticks recorded with its command, no message
  dropped beyond 1 %), with the pixel reward's returns and success;
* the success the recorder stored (pixel reward node) agrees with the emulator's ground truth (the
  sim's contact-based sparse success) at the episode's final tick (measured: both episodes stack);
* the cell's reset routine (the emulator's cell_reset service) ran before each episode, and drew the
  layout of the episode's seed (reset_seed_node:=hardware_emulator);
* when the policy stops (the episode ends), a zero twist reaches Servo within 100 ms (the safety
  filter's watchdog) and Servo holds the arm.

Wall-clock: ~50 s on 2 busy cores (start-up ~10-30 s, two 20 s episodes plus resets). Assertions are
on behaviour, with generous start-up timeouts; the only timing asserted is the 100 ms stop, which is
the safety contract (spec.ARM_COMMAND_TIMEOUT_S).
"""

import json
import signal
import subprocess
from pathlib import Path

import pytest

from chef_contract import topics as T
from chef_contract.msgnp import named_vector_values, stamp_to_ns
from chef_contract.spec import ARM_COMMAND_TIMEOUT_S
from chef_contract.testing import CellProbe, executable, ros_env, unique_domain_id, wait_for

EPISODES = 2
EPISODE_STEPS = 400                     # the benchmark's full episode (20 s)
# the cameras of config/real/cameras.yaml (the benchmark's poses would also hold the pylon camera)
CALIBRATED_FRAMES = {T.camera_frame(c) for c in ('basket_front_left', 'basket_front_right', 'basket_back_left')}
EPISODE_SEED = 40                       # the episodes' seeds (the emulator starts at layout 3)
GROUND_TRUTH = 'emulator/ground_truth'
SERVO_STATUS = 'servo_node/status'
LISTEN = (T.EPISODE_EVENTS, T.REWARD_TERMS, T.POLICY_TWIST, T.TWIST_CMD, T.ARM_POSITION_COMMAND,
          T.JOINT_STATES, T.PINCH_POSE, T.WRIST_POSE, T.JOINT_COMMAND_APPLIED, T.image_topic('basket_front_left'),
          T.GRASP_STATUS, T.OBJECT_POSES, T.TRACKER_OBJECT_POSES)


@pytest.fixture(scope='module')
def cell(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('real_mujoco')
    domain = unique_domain_id()
    log_path = tmp / 'graph.log'
    log = open(log_path, 'w')
    args = ['run', 'real', 'hardware:=mujoco', 'reset_mode:=service', 'policy:=scripted',
            f'episode_steps:={EPISODE_STEPS}', 'camera_binning:=8', 'grasp_stall_velocity_rps:=0.3', 'emulator_seed:=3',
            'reset_seed_node:=hardware_emulator',
            'policy_object_poses:=tracker/object_poses',
            f'data_dir:={tmp / "data"}']
    proc = subprocess.Popen([executable('chef_bringup', 'chef'), *args], env=ros_env(domain),
                            stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    probe = CellProbe(domain, LISTEN, extra={GROUND_TRUTH: 'sensor_msgs/msg/JointState',
                                             SERVO_STATUS: 'std_msgs/msg/Int8'})
    ctx = {'proc': proc, 'probe': probe, 'data': tmp / 'data', 'log': log_path}
    try:
        yield ctx
    finally:
        probe.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                ctx['exit_code'] = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def true_pose_only_success(probe, stamp_ns: int) -> bool:
    """The pose-only success criterion (what the pixel reward computes) on the emulator's true object
    poses, the pinch pose and the grasp flag of the tick stamped `stamp_ns`."""
    from chef_contract.msgnp import msg_to_pose7
    from chef_contract.rewards import sparse_success_pose_only

    def at(topic):      # the tick's message, else the newest of the 100 ms before it (a lost message)
        msgs = sorted(((stamp_to_ns(m.header.stamp), i, m) for i, (_, m) in enumerate(probe.timed(topic))
                       if 0 <= stamp_ns - stamp_to_ns(m.header.stamp) <= 100_000_000), key=lambda x: x[:2])
        assert msgs, f'no {topic} message in the 100 ms up to {stamp_ns}'
        return msgs[-1][2]
    poses = at(T.TRACKER_OBJECT_POSES).poses            # red, green, blue (spec object order)
    red, blue = msg_to_pose7(poses[0])[:3], msg_to_pose7(poses[2])[:3]
    pinch = msg_to_pose7(at(T.PINCH_POSE).pose)[:3]
    grasp = named_vector_values(at(T.GRASP_STATUS))['grasp_status']
    return sparse_success_pose_only(red, blue, pinch, grasp)


def tf_static_frames(bag) -> set:
    """The child frames of the bag's tf_static (the recorder writes it at the episode's start)."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    from chef_recorder.layout import mcap_file
    with open(mcap_file(bag), 'rb') as f:
        return {t.child_frame_id for _, ch, _, msg in make_reader(f, decoder_factories=[DecoderFactory()])
                .iter_decoded_messages() if ch.topic.endswith('/' + T.TF_STATIC) for t in msg.transforms}


def graph_output(cell) -> str:
    return Path(cell['log']).read_text()[-6000:]


def test_contract_topics_come_up_on_the_drivers_interfaces(cell):
    """The twin of test_real_launch.py (launch_testing, ros2_control mock hardware): the same graph
    description must bring up joint_states from the (emulated) joint_state_broadcaster, the state
    adapter's per-tick topics and the camera adapter's images, with Servo and the gripper controller
    listening on the safety filter's topics, and keep every required process alive."""
    probe, proc = cell['probe'], cell['proc']
    want = (T.JOINT_STATES, T.PINCH_POSE, T.WRIST_POSE, T.JOINT_COMMAND_APPLIED, T.image_topic('basket_front_left'),
          T.GRASP_STATUS, T.OBJECT_POSES)
    ok = wait_for(lambda: proc.poll() is not None or all(probe.timed(t) for t in want), timeout=150.0, period=0.2)
    assert proc.poll() is None, f'graph exited {proc.returncode}:\n{graph_output(cell)}'
    assert ok, f'no messages on {[t for t in want if not probe.timed(t)]}:\n{graph_output(cell)}'
    names = list(probe.timed(T.JOINT_STATES)[-1][1].name)
    from chef_contract.spec import ARM_JOINT_NAMES, GRIPPER_JOINT_NAME
    assert names == list(ARM_JOINT_NAMES) + [GRIPPER_JOINT_NAME]           # joint_state_broadcaster order: the URDF's
    img = probe.timed(T.image_topic('basket_front_left'))[-1][1]
    assert (img.width, img.height, img.encoding) == (128, 128, 'rgb8')     # camera_adapter output from binned frames
    for t in (T.TWIST_CMD, T.GRIPPER_CMD):
        assert wait_for(lambda: probe.subscribers(t) >= 1, timeout=30.0), t   # Servo / gripper controller


def test_two_scripted_episodes_record_pixel_rewards_that_agree_with_ground_truth(cell):
    probe, proc = cell['probe'], cell['proc']
    assert wait_for(lambda: probe.timed(T.JOINT_STATES) or proc.poll() is not None, timeout=150.0, period=0.2)
    from std_msgs.msg import String
    for i in range(EPISODES):
        probe.command.publish(String(data=json.dumps({'op': 'start', 'seed': EPISODE_SEED + i})))
    done = wait_for(lambda: proc.poll() is not None or
                    sum(e.event in ('end', 'abort') for e in probe.events()) >= EPISODES,
                    timeout=60.0 + EPISODES * (EPISODE_STEPS / 20.0 + 30.0), period=0.2)
    assert proc.poll() is None, f'graph exited {proc.returncode}:\n{graph_output(cell)}'
    assert done, f'episodes did not finish: {[e.event for e in probe.events()]}\n{graph_output(cell)}'
    events = probe.events()
    ends = [e for e in events if e.event in ('end', 'abort')]
    starts = [e for e in events if e.event == 'start']
    assert [e.event for e in ends] == ['end'] * EPISODES, [(e.event, e.reason) for e in ends]
    assert len(starts) == EPISODES and all(e.source == 'real' for e in events)

    # --- reset ran before each episode: the emulator's reset counter during each episode's ticks ----
    truth = [(t, stamp_to_ns(m.header.stamp), named_vector_values(m)) for t, m in probe.timed(GROUND_TRUTH)]
    first_resets = truth[0][2]['resets']         # the emulator's own start-up layout
    during = []
    for start in starts:
        end = next(e for e in ends if e.episode_id == start.episode_id)
        values = {v['resets'] for _, s, v in truth if start.stamp_ns <= s <= end.stamp_ns}
        assert len(values) == 1, f'the layout changed during episode {start.episode_id[:8]}: {values}'
        during.append(values.pop())
    assert during[0] >= first_resets + 1 and during[1] == during[0] + 1, (first_resets, during)
    # ... and drew the layout of the episode's seed (reset_seed_node), not the emulator's next one
    layouts = []
    for start in starts:
        end = next(e for e in ends if e.episode_id == start.episode_id)
        layouts.append({v['layout_seed'] for _, s, v in truth if start.stamp_ns <= s <= end.stamp_ns})
    assert [e.seed for e in starts] == [EPISODE_SEED + i for i in range(EPISODES)]
    assert layouts == [{float(e.seed)} for e in starts], (layouts, [e.seed for e in starts])

    # --- bags: recorded, complete, and storing the pixel reward node's success ---------------------
    from chef_recorder.bagio import read_bag_metadata
    from chef_recorder.metadata import from_custom_data
    episodes_dir = cell['data'] / 'episodes' / 'cell0'

    def bag_dirs():
        return {p.name: p for p in episodes_dir.iterdir() if not p.name.startswith('.')} \
            if episodes_dir.is_dir() else {}
    assert wait_for(lambda: all(e.episode_id in bag_dirs() for e in ends), timeout=30.0), \
        f'bags published: {sorted(bag_dirs())}'
    bags = bag_dirs()
    by_stamp = {s: v for _, s, v in truth}
    terms = sorted(((stamp_to_ns(m.header.stamp), named_vector_values(m)) for _, m in probe.timed(T.REWARD_TERMS)),
                   key=lambda x: x[0])
    agree = []

    def start_of(ev):
        return next(e for e in starts if e.episode_id == ev.episode_id)

    def rates(ev):
        start = next(e for e in starts if e.episode_id == ev.episode_id)
        return {t: len({stamp_to_ns(m.header.stamp) for _, m in probe.timed(t)
                        if start.stamp_ns <= stamp_to_ns(m.header.stamp) <= ev.stamp_ns})
                for t in (GROUND_TRUTH, T.JOINT_STATES, T.image_topic('basket_front_left'), T.REWARD_TERMS,
                          T.PINCH_POSE, T.GRASP_STATUS, T.POLICY_TWIST)}
    for ev in ends:
        meta = from_custom_data(read_bag_metadata(bags[ev.episode_id])['custom_data'])
        summary = {k: meta.get(k) for k in ('status', 'complete', 'missing_ticks', 'incomplete_ticks', 'steps',
                                            'steps_recorded', 'dropped_messages', 'message_count', 'achieved_rate_hz')}
        print(f'episode {ev.episode_id[:8]}: {summary}; unique stamps seen: {rates(ev)}')
        gt_in = [v for _, s_, v in truth if start_of(ev).stamp_ns <= s_ <= ev.stamp_ns]
        print('  ground truth, max over the episode:', {k: round(max(v[k] for v in gt_in), 3) for k in gt_in[0]})
        # Recorded and complete: the episode's ticks are the emulator's own (episode_manager tick_source
        # joint_states: a slow emulator lengthens the episode instead of leaving ticks unobserved), no
        # episode starts before the recorder has matched every topic (wait_for_recorder) and the policy
        # has received a complete observation set (wait_for_policy: without it the first episode lost
        # 6-32 ticks to DDS discovery), the end comes
        # with the observation after the last command, and the policy answers every complete observation
        # set (timing: tick) - so every tick is recorded with its command. Only a policy starved of CPU
        # for longer than a tick leaves one out (a separate training on the same 2 cores: 119 of 400), and
        # the bag says so (`missing_ticks`, `complete: false`); this CI test runs on quiet cores.
        assert meta['status'] == 'end', summary
        assert meta['dropped_messages'] <= 0.01 * meta['message_count'], summary   # counted; ~0 unless starved
        # the manager counts the ticks it receives (sensor QoS, best effort): one joint state lost to it
        # makes the episode a tick longer, and the bag then holds that tick too, recorded in full
        assert meta['steps'] == EPISODE_STEPS, summary
        assert meta['steps_recorded'] + meta['missing_ticks'] - meta['steps'] in (0, 1), summary
        assert meta['complete'] and meta['missing_ticks'] == 0, (summary, rates(ev))
        assert meta['incomplete_ticks'] <= 0.05 * EPISODE_STEPS, summary
        assert meta['source'] == 'real' and meta['steps'] == EPISODE_STEPS
        assert tf_static_frames(bags[ev.episode_id]) == CALIBRATED_FRAMES      # the cell's calibration
        assert meta['success'] == ev.success                       # stored = the episode manager's (pixels)
        assert meta['returns']['sparse_success'] == ev.returns['sparse_success']
        assert meta['returns_recorded']['staged'] > 0.0           # reward/terms recorded in the bag
        # the pixel reward's last terms of the episode vs the emulator's ground truth at that tick
        start = next(e for e in starts if e.episode_id == ev.episode_id)
        inside = [(s, v) for s, v in terms if start.stamp_ns <= s <= ev.stamp_ns and s in by_stamp]
        assert inside, 'no pixel reward terms matched a ground-truth tick'
        stamp, last = inside[-1]
        assert (last['sparse_success'] > 0.5) == bool(ev.success)
        contact_truth = by_stamp[stamp]['sparse_success'] > 0.5
        if contact_truth != bool(ev.success):
            # Allowed only where the pose-only criterion itself (spec §5), evaluated on the TRUE poses at
            # that tick, disagrees with the contact one: e.g. a scripted expert slowed by lost ticks ends
            # the episode with the released gripper still within 5 cm of red. A wrong pixel estimate fails.
            pose_only_truth = true_pose_only_success(probe, stamp)
            assert pose_only_truth == bool(ev.success), \
                f'episode {ev.episode_id[:8]}: pixels say success={ev.success}, contact ground truth ' \
                f'{contact_truth}, pose-only criterion on the true poses {pose_only_truth}'
        agree += [(v['sparse_success'] > 0.5) == (by_stamp[s]['sparse_success'] > 0.5) for s, v in inside]
    # per tick the pose-only criterion differs from the contact one right after a release (§5): 94-96 % measured
    assert sum(agree) / len(agree) >= 0.85, f'per-tick success agreement {sum(agree)}/{len(agree)}'
    print(f'episodes: {[(e.episode_id[:8], e.success) for e in ends]}; per-tick success agreement '
          f'{sum(agree)}/{len(agree)}')

    # --- the policy stopped with the episode: zero twist to Servo within 100 ms, then the arm holds --
    # The safety filter forwards each policy twist with its observation stamp and, once the policy is
    # silent for its command_timeout_s, publishes its own zero twist stamped with the time it sent it.
    # Measured: that send time minus the (wall) time the probe received the last policy command.
    last_end = max(t for t, m in probe.timed(T.EPISODE_EVENTS) if json.loads(m.data)['event'] == 'end')
    policy = probe.timed(T.POLICY_TWIST)
    i_last = max(i for i, (t, _) in enumerate(policy) if t <= last_end + 1.0)
    t_last_policy = policy[i_last][0]
    wall_last_policy = probe.wall_times(T.POLICY_TWIST)[i_last]
    last_policy_stamp = stamp_to_ns(policy[i_last][1].header.stamp)
    wait_for(lambda: probe.timed(T.TWIST_CMD)[-1][0] > t_last_policy + 0.5, timeout=5.0)
    own = [(stamp_to_ns(m.header.stamp), m.twist) for t, m in probe.timed(T.TWIST_CMD)
           if t > t_last_policy and stamp_to_ns(m.header.stamp) > last_policy_stamp]

    def zero(tw):
        return not any((tw.linear.x, tw.linear.y, tw.linear.z, tw.angular.x, tw.angular.y, tw.angular.z))
    assert own, 'the safety filter sent nothing after the policy stopped'
    first_stamp, first_twist = own[0]
    assert zero(first_twist) and all(zero(tw) for _, tw in own), 'a non-zero twist reached Servo after the policy stopped'
    delay_s = first_stamp * 1e-9 - wall_last_policy
    print(f'zero twist sent to Servo {1e3 * delay_s:.0f} ms after the last policy command arrived')
    assert delay_s <= ARM_COMMAND_TIMEOUT_S, f'zero twist {1e3 * delay_s:.0f} ms after the last policy command'
    first_zero = next(t for t, m in probe.timed(T.TWIST_CMD) if stamp_to_ns(m.header.stamp) == first_stamp)
    # Servo holds: its position commands stay where they were once the zero twist arrived. A gap over
    # Servo's 100 ms timeout in the zero-twist stream (a loaded machine) halts it, and the next zero
    # twist restarts it from the MEASURED pose, as MoveIt Servo does: the arm's settling, 1.3e-3 rad
    # measured. Still integrating a twist would drift by >= 0.02 rad over the window (0.05 rad/s, 0.45 s).
    cmds = [(t, list(m.data)) for t, m in probe.timed(T.ARM_POSITION_COMMAND) if t > first_zero + 0.05]
    if len(cmds) >= 2:
        moved = max(abs(a - b) for _, x in cmds[1:] for a, b in zip(x, cmds[0][1]))
        assert moved < 5e-3, f'Servo kept moving the arm by {moved} rad after the zero twist'
    statuses = [m.data for _, m in probe.timed(SERVO_STATUS)]
    assert statuses and -1 not in statuses, statuses          # no INVALID command reached Servo


def test_graph_stops_cleanly(cell):
    proc = cell['proc']
    assert proc.poll() is None, graph_output(cell)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(60)
    assert code == 0, f'exit {code}:\n{graph_output(cell)}'
