"""scripts/dev (make run): a port another program holds is refused clearly.

Nothing is started then: no Postgres or Redis is left behind for a run that
could not finish.  The servers of a local `make run` are left alone: with
one running, the tests are skipped.
"""

import os
import socket
import subprocess

import pytest

import chatstack

DEV = chatstack.REPO / 'scripts' / 'dev'
ROOT = chatstack.REPO / '.work' / 'dev'


def dev_running():
    pids = [chatstack.Postgres(ROOT, 1).pid, chatstack.Redis(ROOT, 1).pid,
            chatstack.read_pid(ROOT / 'nginx' / 'nginx.pid')]
    return any(pid and chatstack.pid_alive(pid) for pid in pids)


@pytest.fixture
def held():
    """A port some other program listens on."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


def dev_up(**ports):
    env = dict(os.environ, **{k: str(v) for k, v in ports.items()})
    return subprocess.run([DEV, 'up'], env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize('taken, others', [
    ('CHAT_PORT', ('CHAT_PG_PORT', 'CHAT_REDIS_PORT')),
    ('CHAT_REDIS_PORT', ('CHAT_PG_PORT', 'CHAT_PORT')),
])
def test_a_taken_port_is_named_and_nothing_starts(held, taken, others):
    if dev_running():
        pytest.skip('a local make run is up')
    ports = {taken: held}
    for var in others:
        ports[var] = chatstack.free_port()
    r = dev_up(**ports)
    assert r.returncode != 0, r
    assert 'Traceback' not in r.stderr, r.stderr
    assert f'127.0.0.1:{held} is taken' in r.stderr, r.stderr
    assert f'{taken}=N' in r.stderr, r.stderr
    assert 'nothing was started' in r.stderr, r.stderr
    for var in others:
        assert f'{var}=N' not in r.stderr, r.stderr
        assert not chatstack.port_open(ports[var]), var
