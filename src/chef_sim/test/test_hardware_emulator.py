"""chef_sim.hardware_emulator (ROS-free): the MuJoCo stand-in for the real cell's drivers and Servo.

The graph-level test (the real graph on this emulator, `chef run real hardware:=mujoco`) is
chef_real/test/test_real_cell_emulated.py; these check the pieces on their own."""

import numpy as np
import pytest

from chef_contract.spec import ARM_COMMAND_TIMEOUT_S, GRIPPER_CLOSED_POSITION_RAD
from chef_sim.env import RgbStackingEnv, SimConfig
from chef_sim.hardware_emulator import (
    DriverCamera, EmulatedCell, ServoStage, ServoStatus, read_driver_calibration,
)
from pathlib import Path

CAMERAS = Path(__file__).resolve().parents[3] / 'config' / 'real' / 'cameras'


@pytest.fixture(scope='module')
def cell():
    cams = [read_driver_calibration(CAMERAS / 'basket_front_left.yaml', 'basket_front_left', 8)]
    env = RgbStackingEnv(SimConfig(preset='fast', render_images=False, image_size=256, episode_steps=10**9))
    c = EmulatedCell(env, cams)
    c.reset_objects(5)
    yield c
    env.close()


def test_driver_calibration_is_read_as_the_driver_serves_it_and_binned_frames_keep_its_fov():
    cam = read_driver_calibration(CAMERAS / 'basket_front_left.yaml', 'basket_front_left', 4)
    assert cam.size_px == (1920, 1200) and cam.image_size_px == (480, 300)
    assert cam.fovy_deg == pytest.approx(2 * np.degrees(np.arctan(600 / 1365.1877)), abs=1e-6)
    bad = DriverCamera('x', (1920, 1200), np.array([[1000.0, 0, 959.5], [0, 1100.0, 599.5], [0, 0, 1]]), 4)
    assert 'square pixels' in bad.check_renderable()
    assert 'divisible' in DriverCamera('x', (1920, 1200), cam.k, 7).check_renderable()


def test_distorted_calibrations_are_refused(tmp_path):
    text = (CAMERAS / 'basket_front_left.yaml').read_text().replace(
        'data: [0.0, 0.0, 0.0, 0.0, 0.0]', 'data: [-0.1, 0.0, 0.0, 0.0, 0.0]')
    (tmp_path / 'c.yaml').write_text(text)
    with pytest.raises(ValueError, match='distortion'):
        read_driver_calibration(tmp_path / 'c.yaml', 'basket_front_left')


def test_position_controller_reaches_the_command_and_holds_it(cell):
    q0 = cell.env.arm_position_targets()
    target = q0 + np.array([0.02, -0.02, 0.0, 0.01, 0.0, 0.0, 0.03])
    cell.command_arm_positions(target)
    for _ in range(10):
        cell.step()
    np.testing.assert_allclose(cell.frame['sawyer/joints/angle'], target, atol=5e-3)
    cell.command_finger(GRIPPER_CLOSED_POSITION_RAD)
    for _ in range(20):
        cell.step()
    assert cell.frame['gripper/joints/angle'][0] > 100          # closing (bench units 0..255)
    with pytest.raises(ValueError):
        cell.command_arm_positions([0.0] * 6)
    img = cell.render('basket_front_left')
    assert img.shape == (150, 240, 3) and img.dtype == np.uint8 and img.std() > 5


def test_reset_redraws_the_layout_and_releases_the_held_command(cell):
    before = cell.frame['rgb30_red/abs_pose'][:3].copy()
    n = cell.resets
    cell.reset_objects(6)
    assert cell.resets == n + 1 and cell.arm_target is None
    assert np.linalg.norm(cell.frame['rgb30_red/abs_pose'][:3] - before) > 1e-3
    assert set(cell.terms) >= {'sparse_success', 'staged'}


def test_servo_stage_integrates_twists_halts_on_timeout_and_reports_status():
    servo = ServoStage(publish_period_s=0.01)
    q = np.array([0.0, -0.6, 0.0, 1.5, 0.0, 0.7, 1.6])
    assert servo.update(q, 0.0) is None                        # no command yet: halted, nothing published
    servo.command([0.0, 0.0, 0.05, 0.0, 0.0, 0.0], 0.0)
    out = [servo.update(q, 0.01 * i) for i in range(1, 6)]
    assert all(o is not None for o in out) and np.abs(out[-1] - q).max() > 1e-4
    assert servo.status == ServoStatus.NO_WARNING
    t_stop = 0.05 + ARM_COMMAND_TIMEOUT_S + 0.001
    hold = servo.update(q, t_stop)
    np.testing.assert_allclose(hold, out[-1])                  # one last hold at the halted pose
    assert servo.update(q, t_stop + 0.01) is None and servo.halted
    assert servo.command([np.nan] * 6, t_stop) == ServoStatus.INVALID
    assert servo.command([0.0] * 6, t_stop, frame_id='tcp') == ServoStatus.INVALID
    servo.command([0.0] * 6, t_stop + 0.02)
    np.testing.assert_allclose(servo.update(q, t_stop + 0.03), q)   # zero twist: restart from the robot, hold
