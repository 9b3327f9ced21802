"""Scheduled messages and templates (docs/api.md): a message kept until
its time and then posted by the workers as its user would (an event to
every member, once, through a reload too); cancelled before it goes; a
user's saved replies by name."""

import datetime
import time

import pytest

import chatstack
from chatclient import expect_error
from wsclient import ChatWS


def ahead(seconds):
    t = datetime.datetime.now(datetime.timezone.utc) \
        + datetime.timedelta(seconds=seconds)
    return t.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z'


def contents(client, cid):
    return [(m['content'], m['client_id']) for m in
            client.get(f'conversations/{cid}/messages').json['items']]


def test_a_scheduled_message_goes_at_its_time(tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    cid = alice.create('group', ['bob'])['id']
    r = alice.post(f'conversations/{cid}/scheduled',
                   {'content': 'good morning', 'send_at': ahead(2),
                    'mentions': ['bob']})
    assert r.status == 201, r
    sid = r.json['id']
    assert (r.json['conversation_id'], r.json['content'], r.json['type'],
            r.json['mentions']) == (cid, 'good morning', 'text', ['bob'])
    assert [s['id'] for s in alice.get('scheduled').json['items']] == [sid]
    assert bob.get('scheduled').json['items'] == []
    assert contents(alice, cid) == []

    c = ChatWS(tenant.stack.main.port, tenant.token('bob'))
    c.connect()
    c.start()
    try:
        ev = c.wait(lambda e: e.get('type') == 'new_message', 15)
    finally:
        c.close()
    m = ev['message']
    assert (m['sender_id'], m['content'], m['client_id'], m['mentions']) == \
        ('alice', 'good morning', f'sch_{sid}', ['bob'])
    assert contents(bob, cid) == [('good morning', f'sch_{sid}')]
    assert alice.get('scheduled').json['items'] == []


def test_a_cancelled_message_never_goes(tenant):
    alice = tenant.client('alice')
    cid = alice.create('group', ['bob'])['id']
    sid = alice.post(f'conversations/{cid}/scheduled',
                     {'content': 'never', 'send_at': ahead(2)}).json['id']
    expect_error(tenant.client('bob').delete(f'scheduled/{sid}'), 404)
    assert alice.delete(f'scheduled/{sid}').status == 204
    expect_error(alice.delete(f'scheduled/{sid}'), 404)
    time.sleep(3.5)
    assert contents(alice, cid) == []


def test_one_that_can_no_longer_go_is_dropped(stack, tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    cid = bob.create('group', ['alice'])['id']
    alice.post(f'conversations/{cid}/scheduled',
               {'content': 'too late', 'send_at': ahead(2)})
    # alice is removed before its time
    assert bob.delete(f'conversations/{cid}/members/alice').status == 204
    chatstack.wait_for(lambda: 'is dropped' in stack.main.log_text(), 15,
                       'the warning')
    assert 'too late' not in [c for c, _ in contents(bob, cid)]
    assert alice.get('scheduled').json['items'] == []


def test_through_a_reload_it_goes_once(stack, tenant):
    ng = stack.nginx(name='scheduled')
    alice = tenant.client('alice', nginx=ng)
    cid = alice.create('group', ['bob'])['id']
    for i in range(5):
        alice.post(f'conversations/{cid}/scheduled',
                   {'content': f'm{i}', 'send_at': ahead(1 + i * 0.3)})
    ng.command('-s', 'reload')
    time.sleep(1)
    ng.command('-s', 'reload')
    chatstack.wait_for(lambda: len(contents(alice, cid)) == 5, 15, 'all 5')
    time.sleep(2)
    assert sorted(c for c, _ in contents(alice, cid)) == \
        [f'm{i}' for i in range(5)]


@pytest.mark.parametrize('body, words', [
    ({'content': 'x', 'send_at': '2001-01-01T00:00:00Z'}, 'ahead'),
    ({'content': 'x', 'send_at': '2999-01-01T00:00:00Z'}, 'within a year'),
    ({'content': 'x'}, 'send_at'),
    ({'send_at': 'tomorrow'}, 'send_at'),
    ({'send_at': '2030-01-01T00:00:00Z'}, 'content'),
    ({'content': 'x', 'send_at': '2030-01-01T00:00:00Z', 'type': 'poll'},
     'text, emoji or location'),
    ({'content': 'x', 'send_at': '2030-01-01T00:00:00Z', 'colour': 1},
     'colour'),
])
def test_bad_scheduled_messages_are_refused(tenant, body, words):
    alice = tenant.client('alice')
    cid = alice.create('group', ['bob'])['id']
    expect_error(alice.post(f'conversations/{cid}/scheduled', body), 400,
                 words)


def test_only_a_member_schedules(tenant):
    cid = tenant.client('bob').create('group', ['carol'])['id']
    expect_error(tenant.client('alice').post(
        f'conversations/{cid}/scheduled',
        {'content': 'x', 'send_at': ahead(60)}), 404)


def test_templates_are_a_users_own_by_name(tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    r = alice.post('templates', {'name': 'thanks', 'content': 'Thank you!'})
    assert r.status == 201 and r.json['name'] == 'thanks', r
    tid = r.json['id']
    r = alice.post('templates', {'name': 'thanks', 'content': 'Thanks!'})
    assert r.status == 200 and r.json['id'] == tid, r
    alice.post('templates', {'name': 'bye', 'content': 'Bye'})
    assert [(t['name'], t['content']) for t in
            alice.get('templates').json['items']] == \
        [('bye', 'Bye'), ('thanks', 'Thanks!')]
    assert bob.get('templates').json['items'] == []
    expect_error(bob.delete(f'templates/{tid}'), 404)
    assert alice.delete(f'templates/{tid}').status == 204
    expect_error(alice.delete(f'templates/{tid}'), 404)
    for body, words in [({'name': 'x' * 101, 'content': 'c'}, 'name'),
                        ({'name': ' ', 'content': 'c'}, 'name'),
                        ({'name': 'n'}, 'content'),
                        ({'content': 'c'}, 'name')]:
        expect_error(alice.post('templates', body), 400, words)
