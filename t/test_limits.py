"""Rate limits (docs/api.md, "Limits"; README, chat_limit): kept in the
chat_limit_zone shared by the workers of a host, answered 429 with
Retry-After over REST and an error with retry_after over WebSocket; a
WebSocket past chat_limit_close refusals in a row is closed.

Each test has an nginx of its own with the limits it checks, so that no
other test's traffic counts against them.
"""

import time

import pytest

from chatclient import expect_error
from wsclient import ChatWS, HandshakeRefused, worker_of


@pytest.fixture(scope='module')
def limited(stack):
    return stack.nginx(name='limits', EXTRA='''
        chat_limit_zone 1m;
        chat_limit messages 1r/m burst=3;
        chat_limit uploads 2r/h burst=1;
        chat_limit connects 1r/m burst=3;
        chat_limit connections 3;
        chat_limit_close 6;
    ''')


def ws(tenant, user, nginx, start=True):
    c = ChatWS(nginx.port, tenant.token(user))
    c.connect()
    if start:
        c.start()
    return c


def refused(r):
    """A 429 that says when to try again, over REST."""
    expect_error(r, 429)
    return int(r.headers['Retry-After'])


def test_messages_per_user_over_rest_and_websocket_on_both_workers(
        limited, tenant):
    alice, bob = (tenant.client(u, nginx=limited) for u in ('alice', 'bob'))
    cid = alice.create('group', ['bob'])['id']
    # one new connection per request: the workers take turns
    sent = [alice.post(f'conversations/{cid}/messages', {'content': f'm{i}'})
            for i in range(4)]
    assert [r.status for r in sent] == [201] * 4
    # burst 3 and one: the fifth waits about a minute
    wait = refused(alice.post(f'conversations/{cid}/messages',
                              {'content': 'too many'}))
    assert 30 <= wait <= 61
    assert 'chat_limit messages' in \
        alice.post(f'conversations/{cid}/messages', {'content': 'x'}).body

    # the same count over WebSocket, on every worker
    pids = limited.worker_pids()
    conns, seen = [], set()
    while len(seen) < len(pids) and len(conns) < 3:
        c = ws(tenant, 'alice', limited)
        conns.append(c)
        seen.add(worker_of(c, limited, pids))
    try:
        for c in conns:
            m = c.request('send_message', conversation_id=cid, content='ws')
            assert m['type'] == 'error', m
            assert m['error']['code'] == 'rate_limited'
            assert 30 <= m["error"]["retry_after"] <= 61
    finally:
        for c in conns:
            c.close()

    # another user is not counted with alice
    assert bob.post(f'conversations/{cid}/messages',
                    {'content': 'bob'}).status == 201
    # and what was refused was not stored
    r = bob.get(f'conversations/{cid}/messages')
    assert sorted(m['content'] for m in r.json['items']) == \
        ['bob', 'm0', 'm1', 'm2', 'm3']


def test_persistent_abuse_closes_the_websocket(limited, tenant):
    alice = tenant.client('alice', nginx=limited)
    cid = alice.create('group', ['bob'])['id']
    c = ws(tenant, 'alice', limited)
    try:
        answers = [c.request('send_message', conversation_id=cid,
                             content=f'm{i}') for i in range(4)]
        assert [a['type'] for a in answers] == ['ack'] * 4
        # a refusal in a row after another: the sixth closes
        for i in range(5):
            a = c.request('send_message', conversation_id=cid, content='x')
            assert a['error']['code'] == 'rate_limited', a
        c.send_json({'type': 'send_message', 'req': 'last',
                     'conversation_id': cid, 'content': 'x'})
        assert c.close_code(timeout=5) == 1008
    finally:
        c.close()


def test_new_and_open_connections_per_user(limited, tenant):
    held = []
    try:
        for _ in range(3):
            held.append(ws(tenant, 'carol', limited, start=False))
        # three open: the fourth is one too many, whatever the rate says
        with pytest.raises(HandshakeRefused) as e:
            ws(tenant, 'carol', limited, start=False)
        assert e.value.status == 429
        assert int(e.value.headers['retry-after']) >= 1
        assert 'chat_limit connections' in e.value.body
        held.pop().close()
        time.sleep(0.3)
        # one closed: a new one may come, as the connect rate allows (a
        # burst of 3 and one: the fifth new connection is refused)
        held.append(ws(tenant, 'carol', limited, start=False))
        held.pop().close()
        time.sleep(0.3)
        with pytest.raises(HandshakeRefused) as e:
            ws(tenant, 'carol', limited, start=False)
        assert e.value.status == 429
        assert 'chat_limit connects' in str(e.value.body)
        # dave is counted apart
        held.append(ws(tenant, 'dave', limited, start=False))
    finally:
        for c in held:
            c.close()


def test_uploads_per_user_per_hour(limited, tenant):
    alice = tenant.client('alice', nginx=limited)

    def upload():
        return alice.post('files', raw=b'data',
                          headers={'Content-Type': 'text/plain'})

    assert upload().status == 201
    assert upload().status == 201
    # 2 an hour: the next is due in about half an hour
    wait = refused(upload())
    assert 1500 <= wait <= 1810
    r = tenant.client('bob', nginx=limited).post(
        'files', raw=b'x', headers={'Content-Type': 'text/plain'})
    assert r.status == 201


def test_requests_and_connects_per_address(stack, tenant):
    ng = stack.nginx(name='limits-requests', EXTRA='''
        chat_limit_zone 1m;
        chat_limit requests 1r/m burst=5;
        chat_limit connects_per_address 1r/m burst=1;
    ''')
    alice = tenant.client('alice', nginx=ng)
    got = [alice.get('conversations').status for _ in range(6)]
    assert got == [200] * 6
    assert refused(alice.get('conversations')) >= 30
    # health needs no token and is not counted
    assert ng.health() == 200

    # over WebSocket, each client message counts as a request
    c = ws(tenant, 'bob', ng, start=False)
    try:
        answers = [c.request('ping') for _ in range(7)]
        kinds = [a['type'] for a in answers]
        assert kinds.count('error') >= 1, kinds
        err = next(a for a in answers if a['type'] == 'error')
        assert err['error']['code'] == 'rate_limited'
        assert err['error']['retry_after'] >= 30
        # the second new connection from this address is over its rate
        c2 = ws(tenant, 'carol', ng, start=False)
        c2.close()
        with pytest.raises(HandshakeRefused) as e:
            ws(tenant, 'dave', ng, start=False)
        assert e.value.status == 429
        assert 'connects_per_address' in str(e.value.body)
    finally:
        c.close()


def hosts(stack, name, cluster):
    """Two hosts on one Postgres and Redis, each with its own zone."""
    extra = f"""
        chat_limit_zone 1m;
        chat_limit messages 1r/m burst=3{' cluster' if cluster else ''};
    """
    return [stack.nginx(name=f'{name}-{i}', EXTRA=extra) for i in (1, 2)]


def sends_on_two_hosts(tenant, pair, n, wait_max=61):
    """n messages of alice, each on the other host of the pair."""
    alice = [tenant.client('alice', nginx=ng) for ng in pair]
    cid = alice[0].create('group', ['bob'])['id']
    statuses = []
    for i in range(n):
        r = alice[i % 2].post(f'conversations/{cid}/messages',
                              {'content': f'm{i}'})
        statuses.append(r.status)
        if r.status == 429:
            assert 1 <= int(r.headers['Retry-After']) <= wait_max, r
    stored = alice[0].get(f'conversations/{cid}/messages').json['items']
    assert len(stored) == statuses.count(201)
    return statuses, alice, cid


def test_a_cluster_limit_counts_every_host_together(stack, tenant):
    # without "cluster" each host allows burst 3 and one: 4 + 4
    statuses, _, _ = sends_on_two_hosts(tenant, hosts(stack, 'alone', False),
                                        16)
    assert statuses.count(201) == 8, statuses

    # with it the hosts share one bucket in Redis: 4, and at most one more
    # a host that had not heard Redis's answer yet; what passed past the
    # bucket is waited for too (a minute each)
    pair = hosts(stack, 'together', True)
    statuses, alice, cid = sends_on_two_hosts(tenant, pair, 16, 181)
    assert 4 <= statuses.count(201) <= 6, statuses
    assert statuses[:4] == [201] * 4 and statuses[-4:] == [429] * 4, statuses

    # both hosts refuse over WebSocket too, and another user is not counted
    for i in (0, 1):
        c = ChatWS(pair[i].port, tenant.token('alice'))
        c.connect()
        c.start()
        try:
            m = c.request('send_message', conversation_id=cid, content='ws')
            assert m['type'] == 'error', m
            assert m['error']['code'] == 'rate_limited'
        finally:
            c.close()
    bob = tenant.client('bob', nginx=pair[1])
    assert bob.post(f'conversations/{cid}/messages',
                    {'content': 'bob'}).status == 201


def limit_reached(r, words):
    assert r.status == 409, r
    assert r.json['error']['code'] == 'limit_reached', r
    assert words in r.json['error']['message'], r


def test_what_one_request_may_make(stack, tenant):
    ng = stack.nginx(name='limits-max', EXTRA='''
        chat_max members 3;
        chat_max reactions 2;
        chat_max reactions_per_user 1;
        chat_max conversations 2;
    ''')
    alice, bob = (tenant.client(u, nginx=ng) for u in ('alice', 'bob'))
    limit_reached(alice.post('conversations', dict(
        type='group', member_ids=['b', 'c', 'd'])), 'chat_max members')
    cid = alice.create('group', ['bob', 'carol'])['id']
    limit_reached(alice.post(f'conversations/{cid}/members',
                             dict(user_ids=['dave'])), 'chat_max members')
    # a member already there is no new one
    assert alice.post(f'conversations/{cid}/members',
                      dict(user_ids=['bob'])).status == 200

    # two owned conversations at most (direct ones have no owner)
    alice.create('group', ['bob'])
    limit_reached(alice.post('conversations', dict(type='group',
                                                   member_ids=['bob'])),
                  'chat_max conversations')
    assert alice.post('conversations', dict(type='direct',
                                            member_ids=['bob'])).status \
        in (200, 201)

    mid = alice.post(f'conversations/{cid}/messages',
                     {'content': 'react'}).json['id']
    path = f'conversations/{cid}/messages/{mid}/reactions'
    assert alice.post(path, {'emoji': 'a'}).status == 200
    limit_reached(alice.post(path, {'emoji': 'b'}),
                  'chat_max reactions_per_user')
    # the same again is no new reaction
    assert alice.post(path, {'emoji': 'a'}).status == 200
    assert bob.post(path, {'emoji': 'b'}).status == 200
    carol = tenant.client('carol', nginx=ng)
    limit_reached(carol.post(path, {'emoji': 'c'}), 'chat_max reactions')
    assert carol.post(path, {'emoji': 'a'}).status == 200
    r = carol.get(f'conversations/{cid}/messages/{mid}')
    assert sorted((x['emoji'], x['count']) for x in r.json['reactions']) \
        == [('a', 2), ('b', 1)]


@pytest.mark.parametrize('extra, fault', [
    ('chat_max members 0;', 'from 1 to'),
    ('chat_max everything 5;', 'unknown limit'),
    ('chat_max members 5; chat_max members 6;', 'duplicate'),
    ('chat_limit messages 5r/s;', 'chat_limit_zone'),
    ('chat_limit_zone 1m; chat_limit messages 5x/s;', 'is not a rate'),
    ('chat_limit_zone 1m; chat_limit messages 0r/s;', 'is not a rate'),
    ('chat_limit_zone 1m; chat_limit typing 5r/s;', 'unknown limit'),
    ('chat_limit_zone 1m; chat_limit messages 5r/s burst=-1;', 'burst'),
    ('chat_limit_zone 1m; chat_limit messages 5r/s rate=2;', 'unknown'),
    ('chat_limit_zone 1m; chat_limit messages 5r/s; '
     'chat_limit messages 6r/s;', 'duplicate'),
    ('chat_limit_zone 1m; chat_limit connections 0;', 'connections N'),
    ('chat_limit_zone 1m; chat_limit connections 3 cluster;',
     'connections N'),
    ('chat_limit_zone 1k;', 'too small'),
])
def test_bad_limit_directives_are_refused_by_name(check_config, extra,
                                                  fault):
    out = check_config(EXTRA=extra)
    assert out.returncode != 0, out.stderr
    assert fault in out.stderr, out.stderr
