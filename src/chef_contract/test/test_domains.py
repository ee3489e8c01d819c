"""ROS domain ranges: 'LO-HI' parsing with one-line errors, CHEF_DOMAIN_RANGE over the configured
range over the default, and reservation inside the range only."""

import pytest

from chef_contract import domains
from chef_contract.config import ConfigError


def test_parse_domain_range_accepts_inclusive_ranges_and_single_ids():
    assert domains.parse_domain_range('110-199') == (110, 199)
    assert domains.parse_domain_range(' 215 - 232 ') == (215, 232)
    assert domains.parse_domain_range('0-101') == (0, 101)
    assert domains.parse_domain_range('42') == (42, 42)
    assert domains.DEFAULT_DOMAIN_RANGE == (110, 199)


@pytest.mark.parametrize('bad', ['', 'abc', '110-', '-5', '1-2-3', '199-110', '0-233', '300', '1.5-9'])
def test_parse_domain_range_rejects_bad_input_in_one_line(bad):
    with pytest.raises(ConfigError) as err:
        domains.parse_domain_range(bad, 'cells.domain_range')
    msg = str(err.value)
    assert '\n' not in msg and msg.startswith(f'cells.domain_range {bad!r}:')


def test_environment_overrides_configured_range_and_default(monkeypatch):
    monkeypatch.delenv(domains.DOMAIN_RANGE_ENV, raising=False)
    assert domains.domain_range() == (110, 199)
    assert domains.domain_range('5-9') == (5, 9)
    monkeypatch.setenv(domains.DOMAIN_RANGE_ENV, '215-232')
    assert domains.domain_range('5-9') == (215, 232)
    monkeypatch.setenv(domains.DOMAIN_RANGE_ENV, '7-x')
    with pytest.raises(ConfigError, match='^CHEF_DOMAIN_RANGE'):
        domains.domain_range('5-9')


def test_reserve_draws_from_the_range_and_reports_a_full_one(monkeypatch, tmp_path):
    monkeypatch.setattr(domains, '_LOCK_DIR', tmp_path)
    monkeypatch.setattr(domains, '_HELD', {})
    got = {domains.reserve_domain_id((220, 222)) for _ in range(3)}
    assert got == {220, 221, 222}
    with pytest.raises(RuntimeError, match='no free ROS domain id in 220-222'):
        domains.reserve_domain_id((220, 222))
    domains.release_domain_id(221)
    assert domains.reserve_domain_id((220, 222)) == 221
    monkeypatch.setenv(domains.DOMAIN_RANGE_ENV, '230')         # no range given: the environment's
    assert domains.reserve_domain_id() == 230
