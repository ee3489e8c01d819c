"""Session set-up for the real-cell tests: rclpy logging stays initialised for the whole session
(chef_contract.testing.hold_rclpy_logging: a context shut down last must not finalise the rosout
publishers of earlier tests' nodes, where Fast DDS has deadlocked)."""

import pytest

from chef_contract.testing import hold_rclpy_logging


@pytest.fixture(autouse=True, scope='session')
def _rclpy_logging_held():
    hold_rclpy_logging()
    yield
