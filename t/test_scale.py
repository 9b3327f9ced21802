"""What grows with a user's memberships must not stall a worker.

A user in 32,000 conversations connects to an nginx with one worker while
a health probe asks that same worker every few milliseconds: the
memberships are loaded and followed in slices between other work, so the
probe is never kept waiting long, and the user's `join` is answered.  The
figures (connect to join acknowledged, the slowest probe) are printed; the
bench measures them too (bench/run, "memberships").
"""

import threading
import time
import urllib.request

import pytest

from wsclient import ChatWS

MEMBERSHIPS = 32000

# what a probe may wait while a worker loads a user's memberships
PROBE_MAX = 0.050


def member_of_many(stack, tenant, user, n):
    """n groups of tenant whose only member is user, made in SQL at once."""
    stack.query("INSERT INTO chat.tenants (id) VALUES (%s) "
                "ON CONFLICT DO NOTHING", (tenant.name,))
    stack.query("INSERT INTO chat.users (tenant_id, id) VALUES (%s, %s) "
                "ON CONFLICT DO NOTHING", (tenant.name, user))
    rows = stack.query(
        "WITH c AS ("
        "  INSERT INTO chat.conversations (tenant_id, type, title, owner_id,"
        "                                  member_count)"
        "  SELECT %s, 'group', 'g' || i, %s, 1"
        "    FROM generate_series(1, %s) i RETURNING id) "
        "INSERT INTO chat.members (conversation_id, tenant_id, user_id, role)"
        "  SELECT id, %s, %s, 'owner' FROM c RETURNING conversation_id",
        (tenant.name, user, n, tenant.name, user))
    return sorted(r[0] for r in rows)


class Prober(threading.Thread):
    """GET health on the worker until stopped; keeps the slowest answer."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url = url
        self.slowest = 0.0
        self.count = 0
        self.failed = None
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=10) as r:
                    r.read()
            except OSError as e:
                self.failed = e
                return
            self.slowest = max(self.slowest, time.monotonic() - start)
            self.count += 1
            time.sleep(0.005)


@pytest.fixture(scope='module')
def one_worker(stack):
    return stack.nginx(name='one-worker', workers=1)


def test_thousands_of_memberships_load_without_stalling_the_worker(
        stack, tenant, one_worker):
    ids = member_of_many(stack, tenant, 'alice', MEMBERSHIPS)
    assert len(ids) == MEMBERSHIPS

    probe = Prober(f'{one_worker.url}/api/chat/health')
    probe.start()
    time.sleep(0.2)

    start = time.monotonic()
    ws = ChatWS(one_worker.port, tenant.token('alice'))
    ws.connect()
    ack = ws.request('join', conversation_id=ids[-1], timeout=60)
    took = time.monotonic() - start

    probe.stop.set()
    probe.join(15)
    ws.sock.close()

    print(f'\n{MEMBERSHIPS} memberships: join acknowledged {took * 1000:.0f} '
          f'ms after the connect; {probe.count} probes, the slowest '
          f'{probe.slowest * 1000:.1f} ms')
    assert probe.failed is None, probe.failed
    assert ack['type'] == 'ack', ack
    assert probe.count > 0
    assert probe.slowest < PROBE_MAX, \
        f'a health probe waited {probe.slowest * 1000:.1f} ms'


def test_a_user_in_thousands_of_conversations_gets_each_of_them(
        stack, tenant, one_worker):
    ids = member_of_many(stack, tenant, 'bob', 5000)
    bob = ChatWS(one_worker.port, tenant.token('bob'))
    bob.connect()
    bob.start()
    # a message in the last and in the first conversation reach bob
    sender = tenant.client('bob', nginx=one_worker)
    for cid in (ids[-1], ids[0]):
        r = sender.post(f'conversations/{cid}/messages', {'content': 'x'})
        assert r.status == 201, r
    def got(cid):
        return [m for m in bob.log if m.get('type') == 'new_message'
                and m.get('conversation_id') == cid]

    bob.until(lambda: got(ids[-1]) and got(ids[0]), timeout=30,
              what='both messages')
    assert [m['message']['content'] for m in got(ids[-1]) + got(ids[0])] \
        == ['x', 'x']
    # and join answers for any of them, and 404 for one that is not his
    assert bob.request('join', conversation_id=ids[2500])['type'] == 'ack'
    err = bob.request('join', conversation_id=ids[-1] + 10 ** 9)
    assert err['type'] == 'error' and \
        err['error']['code'] == 'not_found', err
    bob.sock.close()
