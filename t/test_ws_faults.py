"""Delivery through faults (API.md section 5, the delivery guarantee):
Redis restarted mid-traffic, clients that disconnect and resume, a client
too slow to read (1013), a reload (1001), two nginx instances on one
Postgres and Redis, a worker killed with SIGKILL.  In each, every client
ends with every seq of its conversation once, in order, with no gap.

Each test starts the nginx (and Redis) it breaks, on the shared Postgres,
and works in a fresh tenant.
"""

import concurrent.futures
import os
import re
import signal
import threading
import time

import pytest

import chatstack
from conftest import ASAN, BAD_LOG, Tenant
from wsclient import ChatWS, pump, worker_of


# helpers (as in test_ws_chat.py)

def conv(client, members=(), type='group', **fields):
    return client.create(type, members, **fields)['id']


def post(client, cid, content='hello', **fields):
    r = client.post(f'conversations/{cid}/messages',
                    dict(content=content, **fields))
    assert r.status == 201, r
    return r.json


def last_seq(client, cid):
    r = client.get(f'conversations/{cid}')
    assert r.status == 200, r
    return r.json['last_seq']


def connect(tenant, user, nginx, start=True, resume=None, **kw):
    c = ChatWS(nginx.port, tenant.token(user), **kw).connect()
    if resume is not None:
        c.start(resume)
    elif start:
        c.start()
    return c


def spread(tenant, user, nginx, per_worker=1, limit=80):
    pids = nginx.worker_pids()
    conns, by = [], {p: [] for p in pids}
    while any(len(v) < per_worker for v in by.values()):
        assert len(conns) < limit, 'nginx does not spread connections'
        c = connect(tenant, user, nginx)
        conns.append(c)
        by.setdefault(worker_of(c, nginx, pids), []).append(c)
    return conns, by


def wait_seqs(clients, cid, upto, timeout=20):
    try:
        pump(clients, lambda: all(c.seqs(cid) and c.seqs(cid)[-1] >= upto
                                  for c in clients), timeout,
             f'seq {upto} of conversation {cid} on every client')
    except TimeoutError as e:
        got = [(c.seqs(cid)[-5:], c.closed, c.eof) for c in clients]
        raise TimeoutError(f'{e}; last seqs: {got}') from None


def assert_once_in_order(seqs, first, last):
    want = list(range(first, last + 1))
    if seqs != want:
        dup = sorted({s for s in seqs if seqs.count(s) > 1})
        order = [(a, b) for a, b in zip(seqs, seqs[1:]) if b <= a]
        raise AssertionError(
            f'{len(seqs)} seqs, want {first}..{last}: missing '
            f'{sorted(set(want) - set(seqs))[:20]}, extra '
            f'{sorted(set(seqs) - set(want))[:20]}, repeated {dup[:20]}, '
            f'out of order {order[:5]}')


def close_all(clients):
    for c in clients:
        try:
            c.close()
        except OSError:
            pass


class Poster:
    """Threads that post to a conversation until stopped; seqs acked."""

    def __init__(self, tenant, cid, users, nginx=None, pause=0.0):
        self.stop = threading.Event()
        self.seqs = []
        self.failures = []
        self.pool = concurrent.futures.ThreadPoolExecutor(len(users))
        self.futures = [self.pool.submit(self._run, tenant.client(u, nginx),
                                         cid, pause) for u in users]

    def _run(self, client, cid, pause):
        n = 0
        while not self.stop.is_set():
            r = client.post(f'conversations/{cid}/messages',
                            {'content': f'p{n}'})
            n += 1
            if r.status == 201:
                self.seqs.append(r.json['seq'])
            else:
                self.failures.append(r)
            if pause:
                time.sleep(pause)

    def wait_count(self, n, timeout=20):
        chatstack.wait_for(lambda: len(self.seqs) >= n, timeout,
                           f'{n} posts')

    def finish(self):
        self.stop.set()
        for f in self.futures:
            f.result()
        self.pool.shutdown()
        return sorted(self.seqs)


def log_since(nginx, offset):
    return nginx.log_text()[offset:]


# Redis

def test_redis_restart_mid_traffic_loses_nothing(stack, tenant):
    redis = chatstack.Redis(stack.root / 'ws-redis-restart')
    redis.start()
    ng = None
    try:
        ng = stack.nginx(name='ws-redis', REDIS=redis.address)
        owner = tenant.client('owner', nginx=ng)
        cid = conv(owner, ['p1', 'p2', 'bob'])
        watchers, _ = spread(tenant, 'bob', ng, per_worker=2)
        poster = Poster(tenant, cid, ['p1', 'p2'], ng, pause=0.01)
        try:
            poster.wait_count(20)
            pump(watchers, lambda: all(len(c.seqs(cid)) >= 5
                                       for c in watchers), 10, 'traffic')
            redis.stop()
            down_at = len(poster.seqs)
            time.sleep(2.5)
            during = len(poster.seqs) - down_at
            redis.start()
            chatstack.wait_for(lambda: chatstack.port_open(redis.port), 10,
                               'redis back')
        finally:
            acked = poster.finish()
        assert during >= 10, 'posting stopped while Redis was down'
        assert not poster.failures, poster.failures[:3]
        final = last_seq(owner, cid)
        assert acked == list(range(1, final + 1))
        # the last events were published while Redis was away: only the
        # gap check of the resubscription brings them
        wait_seqs(watchers, cid, final, 20)
        for c in watchers:
            assert c.closed is None and not c.eof
            assert_once_in_order(c.seqs(cid), 1, final)
        # and live delivery goes on
        for i in range(10):
            post(owner, cid, f'after{i}')
        wait_seqs(watchers, cid, final + 10)
        for c in watchers:
            assert_once_in_order(c.seqs(cid), 1, final + 10)
        close_all(watchers)
    finally:
        if ng:
            ng.stop()
        redis.stop()


def test_connection_made_while_redis_is_down_is_served(stack, tenant):
    redis = chatstack.Redis(stack.root / 'ws-redis-away')
    redis.start()
    ng = None
    try:
        ng = stack.nginx(name='ws-redis-away', REDIS=redis.address)
        owner = tenant.client('owner', nginx=ng)
        cid = conv(owner, ['bob'])
        post(owner, cid)
        redis.stop()
        conns, _ = spread(tenant, 'bob', ng)
        for i in range(5):
            post(owner, cid)
        redis.start()
        wait_seqs(conns, cid, 6, 20)
        for c in conns:
            assert_once_in_order(c.seqs(cid), 2, 6)
        post(owner, cid)
        wait_seqs(conns, cid, 7)
        close_all(conns)
    finally:
        if ng:
            ng.stop()
        redis.stop()


# reconnecting

def test_reconnect_with_resume_gets_exactly_the_missed_events(stack, tenant):
    alice = tenant.client('alice')
    a, b = conv(alice, ['bob']), conv(alice, ['bob'])
    c = connect(tenant, 'bob', stack.main)
    for i in range(5):
        post(alice, a)
    post(alice, b)
    wait_seqs([c], a, 5)
    wait_seqs([c], b, 1)
    c.close()
    w = connect(tenant, 'alice', stack.main)
    for i in range(10):
        post(alice, a)
        w.request('send_message', conversation_id=b, content='ws')
    w.close()
    c = connect(tenant, 'bob', stack.main, resume={str(a): 5, str(b): 1})
    assert_once_in_order(c.seqs(a), 6, 15)
    assert_once_in_order(c.seqs(b), 2, 11)
    post(alice, a)
    wait_seqs([c], a, 16)
    assert_once_in_order(c.seqs(a), 6, 16)
    c.close()


def test_resume_after_a_dropped_connection_mid_stream(stack, tenant):
    alice = tenant.client('alice')
    cid = conv(alice, ['bob'])
    c = connect(tenant, 'bob', stack.main)
    poster = Poster(tenant, cid, ['alice'])
    try:
        poster.wait_count(10)
        c.until(lambda: len(c.seqs(cid)) >= 5, 10, 'some events')
        # no close frame: the TCP connection just goes
        c.sock.close()
        seen = c.seqs(cid)
        poster.wait_count(len(poster.seqs) + 10)
        again = connect(tenant, 'bob', stack.main,
                        resume={str(cid): seen[-1]})
        poster.wait_count(len(poster.seqs) + 10)
    finally:
        poster.finish()
    final = last_seq(alice, cid)
    wait_seqs([again], cid, final)
    assert_once_in_order(seen + again.seqs(cid), 1, final)
    again.close()


# a client too slow to read

def test_slow_reader_is_closed_1013_and_others_are_unaffected(stack,
                                                              tenant):
    # a second server whose sockets keep a small send buffer (no kernel
    # autotuning): the slow client's backlog reaches nginx's queue soon
    port = chatstack.free_port()
    ng = stack.nginx(name='ws-slow', EXTRA=(
        'chat_ws_send_queue 64k; '
        f'server {{ listen 127.0.0.1:{port} sndbuf=16k; '
        'location = /ws/chat { chat_websocket; } }'))
    try:
        owner = tenant.client('owner', nginx=ng)
        cid = conv(owner, ['bob'])
        offset = len(ng.log_text())
        slow = ChatWS(port, tenant.token('bob'), rcvbuf=4096).connect()
        slow.start()
        others, _ = spread(tenant, 'bob', ng)
        big = 'x' * (15 * 1024)
        closing = 'client reads too slowly'
        done = threading.Event()
        n = [0]

        def poster():
            cl = tenant.client('owner', nginx=ng)
            while not done.is_set() and n[0] < 300:
                post(cl, cid, big)
                n[0] += 1

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(poster) for _ in range(2)]
            try:
                # the others read all along; the slow one reads nothing
                pump(others, lambda: closing in log_since(ng, offset) or
                     all(f.done() for f in futures), 60, 'the slow reader')
            finally:
                done.set()
                for f in futures:
                    f.result()
        assert closing in log_since(ng, offset), \
            f'{n[0]} posts did not fill the queue'
        # now it reads: whole frames in order, then the close frame
        assert slow.wait_closed(10) == 1013
        got = slow.seqs(cid)
        assert got == list(range(1, len(got) + 1))
        assert len(got) < n[0]
        final = last_seq(owner, cid)
        wait_seqs(others, cid, final, 30)
        for c in others:
            assert c.closed is None and not c.eof
            assert_once_in_order(c.seqs(cid), 1, final)
        # it may come back (what a resume of all it missed meets is
        # test_ws_chat.py::test_resume_of_a_long_history_is_paced_not_closed)
        back = ChatWS(port, tenant.token('bob')).connect()
        back.start({str(cid): final - 2})
        post(owner, cid, 'more')
        wait_seqs([back], cid, final + 1)
        assert_once_in_order(back.seqs(cid), final - 1, final + 1)
        close_all(others + [back, slow])
    finally:
        ng.stop()


# reload

def test_reload_closes_1001_and_clients_resume_with_nothing_lost(stack,
                                                                 tenant):
    ng = stack.nginx(name='ws-reload')
    try:
        owner = tenant.client('owner', nginx=ng)
        cid = conv(owner, ['bob'])
        conns, by = spread(tenant, 'bob', ng, per_worker=2)
        old = set(by)
        poster = Poster(tenant, cid, ['owner'], ng, pause=0.01)
        try:
            poster.wait_count(10)
            ng.reload()
            pump(conns, lambda: all(c.closed or c.eof for c in conns), 10,
                 'the close of every connection')
            for c in conns:
                assert c.closed and c.closed[0] == 1001, (c.closed, c.eof)
                c.close()
            # the old workers go once their clients are gone
            chatstack.wait_for(lambda: not old & set(ng.worker_pids()), 15,
                               'old workers still up')
            back = [connect(tenant, 'bob', ng, resume={
                str(cid): c.seqs(cid)[-1] if c.seqs(cid) else 0})
                for c in conns]
            poster.wait_count(len(poster.seqs) + 10)
        finally:
            acked = poster.finish()
        final = last_seq(owner, cid)
        assert acked == list(range(1, final + 1))
        wait_seqs(back, cid, final)
        for before, after in zip(conns, back):
            assert_once_in_order(before.seqs(cid) + after.seqs(cid), 1,
                                 final)
        close_all(back)
    finally:
        ng.stop()


# two instances

def test_two_instances_share_postgres_and_redis(stack, tenant):
    second = stack.nginx(name='ws-second')
    try:
        one = stack.main
        owner = tenant.client('owner', nginx=one)
        cid = conv(owner, ['bob', 'carol'])
        on_one = connect(tenant, 'bob', one)
        on_two = connect(tenant, 'carol', second)
        both = [on_one, on_two]
        post(tenant.client('owner', nginx=second), cid, 'via two')
        wait_seqs(both, cid, 1)
        m = on_one.request('send_message', conversation_id=cid,
                           content='ws via one')
        assert m['type'] == 'ack'
        m = on_two.request('send_message', conversation_id=cid,
                           content='ws via two')
        assert m['type'] == 'ack'
        wait_seqs(both, cid, 3)
        for c in both:
            assert [e['message']['content'] for e in c.events(cid)] == \
                ['via two', 'ws via one', 'ws via two']
        # concurrent senders on both
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda k: [post(tenant.client(
                'owner', nginx=(one, second)[k % 2]), cid, f'{k}-{i}')
                for i in range(40)], range(4)))
        wait_seqs(both, cid, 163)
        for c in both:
            assert_once_in_order(c.seqs(cid), 1, 163)
        close_all(both)
    finally:
        second.stop()


# a worker killed

def test_killed_worker_clients_reconnect_others_keep_receiving(stack,
                                                              tenant):
    # started apart from the stack: the master's report of the killed
    # worker is expected here, and checked by this test alone
    ng = chatstack.Nginx(stack.root, name='ws-kill9', asan=ASAN,
                         PG_CONNINFO=stack.pg.conninfo,
                         REDIS=stack.redis.address,
                         JWT_KEY=f'secret_file={stack.secret_file} '
                                 f'alg=HS256')
    ng.start()
    try:
        ng.wait_ready()
        t = Tenant(stack, ng, tenant.name)
        owner = t.client('owner')
        cid = conv(owner, ['bob'])
        conns, by = spread(t, 'bob', ng, per_worker=2)
        for i in range(5):
            post(owner, cid)
        wait_seqs(conns, cid, 5)
        victim, survivor = sorted(by)
        os.kill(victim, signal.SIGKILL)
        dead, alive = by[victim], by[survivor]
        pump(dead, lambda: all(c.eof for c in dead), 10,
             'the end of the killed worker\'s connections')
        for i in range(10):
            post(owner, cid)
        wait_seqs(alive, cid, 15)
        for c in alive:
            assert c.closed is None and not c.eof
            assert_once_in_order(c.seqs(cid), 1, 15)
        # the master starts another worker; the dropped clients resume
        chatstack.wait_for(lambda: len(ng.worker_pids()) == 2, 10,
                           'no new worker')
        back = [connect(t, 'bob', ng, resume={str(cid): c.seqs(cid)[-1]})
                for c in dead]
        for i in range(5):
            post(owner, cid)
        wait_seqs(back + alive, cid, 20)
        for before, after in zip(dead, back):
            assert_once_in_order(before.seqs(cid) + after.seqs(cid), 1, 20)
        for c in alive:
            assert_once_in_order(c.seqs(cid), 1, 20)
        close_all(alive + back)
    finally:
        ng.stop()
    bad = [line for line in ng.log_text().splitlines()
           if BAD_LOG.search(line) and not
           re.search(rf'worker process {victim} exited on signal 9', line)]
    assert not bad, bad[:10]


def test_membership_made_while_redis_is_down_is_followed_after(stack,
                                                               tenant):
    redis = chatstack.Redis(stack.root / 'ws-redis-member')
    redis.start()
    ng = None
    conns, watchers = [], []
    try:
        ng = stack.nginx(name='ws-redis-member', REDIS=redis.address)
        owner = tenant.client('owner', nginx=ng)
        probe = conv(owner, ['bob'])
        conns, _ = spread(tenant, 'carol', ng)
        watchers, _ = spread(tenant, 'bob', ng)
        for round in range(6):
            old = conv(owner, ['bob'])
            redis.stop()
            added = owner.post(f'conversations/{old}/members',
                               {'user_ids': ['carol']})
            assert added.status == 200, added
            new = conv(owner, ['carol'])
            redis.start()
            # every worker is subscribed again once bob sees news live
            seq = post(owner, probe, 'probe')['seq']
            wait_seqs(watchers, probe, seq, 15)
            post(owner, old, 'for carol')
            post(owner, new, 'for carol too')
            pump(conns, lambda: all(c.seqs(old) and c.seqs(new)
                                    for c in conns), 3,
                 f'round {round}: both conversations on every connection '
                 f'of carol')
            for c in conns:
                assert c.seqs(old) == [1, 2]
                assert c.seqs(new) == [1]
    finally:
        close_all(conns + watchers)
        if ng:
            ng.stop()
        redis.stop()


def test_postgres_down_answers_unavailable_and_the_connection_stays(
        own_stack):
    ng = own_stack.nginx()
    t = Tenant(own_stack, ng)
    cid = conv(t.client('alice'), ['bob'])
    c = connect(t, 'alice', ng)

    own_stack.pg.stop()
    m = c.request('send_message', conversation_id=cid, content='lost?')
    assert m['type'] == 'error', m
    assert m['error']['code'] == 'unavailable', m
    assert m['error']['retry_after'] >= 1, m
    assert c.request('ping')['type'] == 'pong'

    own_stack.pg.start()
    deadline = time.monotonic() + 20
    while True:
        m = c.request('send_message', conversation_id=cid, content='back')
        if m['type'] == 'ack':
            break
        assert m['error']['code'] == 'unavailable', m
        assert time.monotonic() < deadline, 'Postgres is not used again'
        time.sleep(0.2)

    seq = m['message']['seq']
    c.until(lambda: seq in c.seqs(cid), 10, 'the message delivered')
    assert c.closed is None


def test_redis_that_stops_answering_is_dropped_and_delivery_goes_on(
        stack, tenant):
    """A Redis that keeps its connections but answers nothing (stopped
    here; a half-open connection looks the same): the link that waits for
    a reply is dropped after 5 s and connected again, and once Redis
    answers, every client gets every seq once, in order."""
    redis = chatstack.Redis(stack.root / 'ws-redis-frozen')
    redis.start()
    ng = None
    watchers = []
    try:
        ng = stack.nginx(name='ws-redis-frozen', REDIS=redis.address)
        owner = tenant.client('owner', nginx=ng)
        cid = conv(owner, ['bob'])
        watchers, _ = spread(tenant, 'bob', ng)
        post(owner, cid, 'before')
        wait_seqs(watchers, cid, 1)
        offset = len(ng.log_text())

        os.kill(redis.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            for i in range(3):
                post(owner, cid, f'frozen{i}')     # REST does not wait
            assert time.monotonic() - started < 5
            chatstack.wait_for(
                lambda: 'redis publishing connection has owed'
                        in log_since(ng, offset), 15,
                'the publishing link was not dropped')
            dropped = time.monotonic() - started
        finally:
            os.kill(redis.pid, signal.SIGCONT)
        assert 4.5 <= dropped < 12, dropped

        for i in range(5):
            post(owner, cid, f'after{i}')
        final = last_seq(owner, cid)
        assert final == 9
        wait_seqs(watchers, cid, final, 20)
        for c in watchers:
            assert c.closed is None and not c.eof
            assert_once_in_order(c.seqs(cid), 1, final)
        bad = [line for line in log_since(ng, offset).splitlines()
               if BAD_LOG.search(line)]
        assert not bad, bad[:10]
    finally:
        close_all(watchers)
        if ng:
            ng.stop()
        redis.stop()
