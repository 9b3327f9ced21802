"""Calls over the WebSocket (docs/api.md, Calls): an invitation rings the
other members' connections, is accepted, declined or missed, and ends;
SDP and ICE are relayed to one peer's connections and never stored; the
end leaves a message of type "call" with its outcome and duration; a
callee in another call is busy; hello carries chat_ice_servers.
"""

import json
import time

import pytest

import chatstack
from wsclient import ChatWS

ICE = [{'urls': 'stun:stun.example.com:3478'},
       {'urls': ['turn:turn.example.com'], 'username': 'u',
        'credential': 'p'}]


@pytest.fixture(scope='module')
def calling(stack):
    return stack.nginx(name='calls', EXTRA=(
        f"chat_ice_servers '{json.dumps(ICE)}';"))


def ws(tenant, user, ng):
    c = ChatWS(ng.port, tenant.token(user))
    c.connect()
    c.start()
    return c


def ack(m):
    assert m['type'] == 'ack', m
    return m['call']


CODES = {400: 'bad_request', 403: 'forbidden', 404: 'not_found',
         409: 'conflict', 410: 'gone'}


def refused(m, status, words):
    assert m['type'] == 'error', m
    assert m['error']['code'] == CODES[status], m
    assert words in m['error']['message'], m


def event(c, type, call_id, timeout=10):
    """The first event of that type of the call, received or to come."""
    def of_call(m):
        return m.get('type') == type and (m.get('call') or {}).get('id') \
            == call_id
    c.until(lambda: any(of_call(m) for m in c.log), timeout, type)
    return next(m for m in c.log if of_call(m))


def call_messages(client, cid):
    return [json.loads(m['content']) for m in
            client.get(f'conversations/{cid}/messages').json['items']
            if m['type'] == 'call']


def test_hello_gives_the_ice_servers(calling, tenant):
    c = ChatWS(calling.port, tenant.token('alice'))
    c.connect()
    try:
        assert c.hello['ice_servers'] == ICE
    finally:
        c.close()
    plain = ChatWS(tenant.stack.main.port, tenant.token('alice'))
    plain.connect()
    try:
        assert 'ice_servers' not in plain.hello
    finally:
        plain.close()


def test_a_call_rings_is_answered_signals_and_ends(calling, tenant):
    alice_rest = tenant.client('alice', nginx=calling)
    cid = alice_rest.create('direct', ['bob'])['id']
    alice, bob, carol = (ws(tenant, u, calling)
                         for u in ('alice', 'bob', 'carol'))
    try:
        call = ack(alice.request('call_invite', conversation_id=cid,
                                 video=True))
        assert (call['state'], call['caller_id'], call['video']) == \
            ('ringing', 'alice', True)
        rung = event(bob, 'call_invite', call['id'])['call']
        assert rung['conversation_id'] == cid

        answered = ack(bob.request('call_accept', call_id=call['id']))
        assert answered['state'] == 'active'
        assert answered['participants'] == ['bob']
        assert event(alice, 'call_accepted', call['id'])['user_id'] == 'bob'

        # the offer to bob's connections only, as written
        assert alice.request('call_signal', call_id=call['id'], to='bob',
                             signal='v=0 offer')['type'] == 'ack'
        sig = bob.wait(lambda m: m.get('type') == 'call_signal')
        assert (sig['call_id'], sig['from'], sig['signal']) == \
            (call['id'], 'alice', 'v=0 offer')
        assert bob.request('call_signal', call_id=call['id'], to='alice',
                           signal='{"candidate":"c"}')['type'] == 'ack'
        assert alice.wait(lambda m: m.get('type') == 'call_signal')[
            'signal'] == '{"candidate":"c"}'
        time.sleep(0.3)
        assert not carol.of_type('call_signal')
        assert not carol.of_type('call_invite')

        # who is not in it cannot signal, nor to someone outside
        refused(carol.request('call_signal', call_id=call['id'], to='bob',
                              signal='x'), 404, 'no call of yours')
        refused(alice.request('call_signal', call_id=call['id'],
                              to='carol', signal='x'), 400, '"to"')

        time.sleep(1.1)
        ended = ack(alice.request('call_end', call_id=call['id']))
        assert (ended['state'], ended['outcome']) == ('ended', 'ended')
        assert event(bob, 'call_ended', call['id'])['call']['outcome'] \
            == 'ended'
        bob.until(lambda: any(m['message']['type'] == 'call'
                              for m in bob.of_type('new_message')))
        (note,) = [m['message'] for m in bob.of_type('new_message')
                   if m['message']['type'] == 'call']
        assert note['sender_id'] == 'alice' and note['seq'] > 0
        (kept,) = call_messages(alice_rest, cid)
        assert (kept['call_id'], kept['outcome'], kept['video']) == \
            (call['id'], 'ended', True)
        assert kept['duration'] >= 1
        refused(alice.request('call_end', call_id=call['id']), 410,
                'has ended')
    finally:
        for c in (alice, bob, carol):
            c.close()


def test_declined_busy_and_one_at_a_time(calling, tenant):
    rest = tenant.client('alice', nginx=calling)
    ab = rest.create('direct', ['bob'])['id']
    bc = tenant.client('carol', nginx=calling).create('direct', ['bob'])['id']
    alice, bob, carol = (ws(tenant, u, calling)
                         for u in ('alice', 'bob', 'carol'))
    try:
        call = ack(alice.request('call_invite', conversation_id=ab))
        refused(alice.request('call_invite', conversation_id=ab), 409,
                'another call')
        # bob is rung by alice: carol finds him busy
        busy = ack(carol.request('call_invite', conversation_id=bc))
        assert (busy['state'], busy['outcome']) == ('ended', 'busy')
        declined = ack(bob.request('call_decline', call_id=call['id']))
        assert declined['outcome'] == 'declined'
        assert [m['outcome'] for m in call_messages(rest, ab)] == \
            ['declined']
        refused(alice.request('call_accept', call_id=call['id']), 410,
                'has ended')
        refused(carol.request('call_accept', call_id=call['id']), 404,
                'call not found')
        # the caller may not accept or decline its own call
        again = ack(alice.request('call_invite', conversation_id=ab))
        refused(alice.request('call_accept', call_id=again['id']), 409,
                'in this call')
        refused(alice.request('call_decline', call_id=again['id']), 409,
                'another')
        cancelled = ack(alice.request('call_end', call_id=again['id']))
        assert cancelled['outcome'] == 'cancelled'
    finally:
        for c in (alice, bob, carol):
            c.close()


def test_a_call_nobody_answers_is_missed(calling, stack, tenant):
    rest = tenant.client('alice', nginx=calling)
    cid = rest.create('direct', ['bob'])['id']
    alice, bob = ws(tenant, 'alice', calling), ws(tenant, 'bob', calling)
    try:
        call = ack(alice.request('call_invite', conversation_id=cid))
        # it rang for 30 s, as far as Postgres can tell
        stack.query("UPDATE chat.calls SET created_at = now() - "
                    "interval '31 s' WHERE id = %s", (call['id'],))
        assert event(bob, 'call_ended', call['id'], 10)['call'][
            'outcome'] == 'missed'
        assert [m['outcome'] for m in call_messages(rest, cid)] == ['missed']
    finally:
        alice.close()
        bob.close()


@pytest.mark.parametrize('fields, words', [
    ({}, 'conversation_id'),
    ({'conversation_id': 'x'}, 'conversation_id'),
    ({'conversation_id': 1, 'video': 'yes'}, 'video'),
])
def test_bad_invitations_are_refused(calling, tenant, fields, words):
    c = ws(tenant, 'alice', calling)
    try:
        refused(c.request('call_invite', **fields), 400, words)
        refused(c.request('call_invite', conversation_id=999999999), 404,
                'not found')
        refused(c.request('call_signal', call_id=1, to='bob',
                          signal='x' * 16385), 400, 'signal')
    finally:
        c.close()


@pytest.mark.parametrize('value, fault', [
    ("'{}'", 'JSON array'),
    ("'[]'", 'JSON array'),
    ("'[{\"url\": \"stun:x\"}]'", 'urls'),
    ("'not json'", 'JSON array'),
])
def test_bad_ice_servers_are_refused_by_nginx_t(check_config, value, fault):
    out = check_config(EXTRA=f'chat_ice_servers {value};')
    assert out.returncode != 0
    assert fault in out.stderr, out.stderr
