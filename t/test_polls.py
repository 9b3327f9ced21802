"""Polls (docs/api.md, "Polls"): a message of type poll with 2-10 options,
one choice or several, anonymous or not, an optional closing time; votes
set, changed and retracted over REST and WebSocket, each an event with
seq; closing by the author or a moderator.
"""

import datetime
import time

import pytest

from chatclient import expect_error
from wsclient import ChatWS


def poll(client, cid, options=('red', 'green', 'blue'), **kw):
    body = dict(type='poll', content='Which colour?',
                poll_options=list(options), **kw)
    r = client.post(f'conversations/{cid}/messages', body)
    assert r.status == 201, r
    return r.json


def vote(client, cid, mid, *choices):
    return client.post(f'conversations/{cid}/messages/{mid}/votes',
                       {'choices': list(choices)})


def counts(m):
    return [o['votes'] for o in m['poll']['options']]


def test_a_poll_and_its_votes(tenant):
    alice, bob, carol = (tenant.client(u) for u in ('alice', 'bob', 'carol'))
    cid = alice.create('group', ['bob', 'carol'])['id']
    m = poll(alice, cid)
    p = m['poll']
    assert m['type'] == 'poll' and m['content'] == 'Which colour?'
    assert [o['text'] for o in p['options']] == ['red', 'green', 'blue']
    assert (p['multiple'], p['anonymous'], p['closed'], p['mine']) == \
        (False, False, False, [])
    r = vote(bob, cid, m['id'], 2)
    assert r.status == 200, r
    assert counts(r.json) == [0, 1, 0] and r.json['poll']['mine'] == [2]
    assert r.json['poll']['options'][1]['voters'] == ['bob']
    vote(carol, cid, m['id'], 2)
    # a vote changed replaces the one before
    r = vote(bob, cid, m['id'], 3)
    assert counts(r.json) == [0, 1, 1] and r.json['poll']['voter_count'] == 2
    # and retracted
    r = bob.delete(f'conversations/{cid}/messages/{m["id"]}/votes')
    assert r.status == 200 and counts(r.json) == [0, 1, 0]
    assert r.json['poll']['mine'] == []
    # each change an event with seq, with the counts
    kinds = [(t, p.get('poll', {}).get('voter_count'))
             for _, t, p in tenant.stack.events(cid) if t.startswith('poll')]
    assert kinds == [('poll_voted', 1), ('poll_voted', 2),
                     ('poll_voted', 2), ('poll_voted', 1)]
    # a reader sees the poll in the message
    r = carol.get(f'conversations/{cid}/messages/{m["id"]}')
    assert counts(r.json) == [0, 1, 0] and r.json['poll']['mine'] == [2]


def test_single_and_multiple_choice_and_bad_votes(tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    cid = alice.create('group', ['bob'])['id']
    one = poll(alice, cid)
    expect_error(vote(bob, cid, one['id'], 1, 2), 400, 'one option')
    expect_error(vote(bob, cid, one['id'], 4), 400, '1 to 3')
    expect_error(vote(bob, cid, one['id']), 400, 'choices')
    expect_error(bob.post(f'conversations/{cid}/messages/{one["id"]}/votes',
                          {}), 400, 'choices')
    many = poll(alice, cid, poll_multiple=True)
    r = vote(bob, cid, many['id'], 1, 3, 3)
    assert counts(r.json) == [1, 0, 1] and r.json['poll']['mine'] == [1, 3]
    text = alice.post(f'conversations/{cid}/messages',
                      {'content': 'not a poll'}).json
    expect_error(vote(bob, cid, text['id'], 1), 400, 'not a poll')
    # non-members and other tenants see nothing
    expect_error(vote(tenant.client('mallory'), cid, one['id'], 1), 404)


@pytest.mark.parametrize('fields, fault', [
    (dict(poll_options=['only']), '2 to 10'),
    (dict(poll_options=[str(i) for i in range(11)]), 'poll_options'),
    (dict(poll_options=['a', 'A']), 'each option once'),
    (dict(poll_options=['a', 'b'], poll_closes_at='2001-01-01T00:00:00Z'),
     'future'),
    (dict(poll_options='a,b'), 'poll_options'),
    (dict(poll_options=['a', 'b'], poll_multiple='yes'), 'poll_multiple'),
])
def test_bad_polls_are_refused(tenant, fields, fault):
    alice = tenant.client('alice')
    cid = alice.create('group', ['bob'])['id']
    r = alice.post(f'conversations/{cid}/messages',
                   dict(type='poll', content='Q?', **fields))
    expect_error(r, 400, fault)


def test_options_only_in_a_poll(tenant):
    alice = tenant.client('alice')
    cid = alice.create('group', ['bob'])['id']
    expect_error(alice.post(f'conversations/{cid}/messages', dict(
        content='x', poll_options=['a', 'b'])), 400, 'only a poll')
    expect_error(alice.post(f'conversations/{cid}/messages', dict(
        type='poll', content='x')), 400, 'poll_options')


def test_anonymous_polls_show_counts_only(tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    cid = alice.create('group', ['bob'])['id']
    m = poll(alice, cid, poll_anonymous=True)
    r = vote(bob, cid, m['id'], 1)
    assert r.json['poll']['options'][0] == {'text': 'red', 'votes': 1,
                                             'voters': None}
    assert r.json['poll']['mine'] == [1]
    (_, _, e), = [x for x in tenant.stack.events(cid)
                  if x[1] == 'poll_voted']
    assert e['user_id'] is None and 'bob' not in str(e)


def test_closing_by_author_or_moderator_and_by_time(tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    cid = alice.create('group', ['bob'])['id']
    m = poll(alice, cid)
    expect_error(bob.post(f'conversations/{cid}/messages/{m["id"]}/close'),
                 403, 'moderator')
    r = alice.post(f'conversations/{cid}/messages/{m["id"]}/close')
    assert r.status == 200 and r.json['poll']['closed'] is True
    expect_error(vote(bob, cid, m['id'], 1), 409, 'closed')
    expect_error(alice.post(f'conversations/{cid}/messages/{m["id"]}/close'),
                 409, 'closed')
    soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
            ).strftime('%Y-%m-%dT%H:%M:%S.000Z')
    timed = poll(bob, cid, poll_closes_at=soon)
    assert timed['poll']['closes_at'] == soon
    assert vote(alice, cid, timed['id'], 1).status == 200
    time.sleep(2.5)
    expect_error(vote(alice, cid, timed['id'], 2), 409, 'closed')


def test_votes_over_websocket(tenant):
    alice = tenant.client('alice')
    cid = alice.create('group', ['bob'])['id']
    m = poll(alice, cid)
    bob = ChatWS(tenant.nginx.port, tenant.token('bob'))
    bob.connect()
    bob.start()
    try:
        a = bob.request('vote_poll', message_id=m['id'], choices=[1])
        assert a['type'] == 'ack', a
        assert counts(a['message']) == [1, 0, 0]
        bob.until(lambda: bob.of_type('poll_voted'))
        e = bob.of_type('poll_voted')[0]
        assert e['poll']['options'][0]['votes'] == 1 and e['seq'] >= 2
        a = bob.request('retract_vote', message_id=m['id'])
        assert counts(a['message']) == [0, 0, 0]
        a = bob.request('close_poll', message_id=m['id'])
        assert a['type'] == 'error' and a['error']['code'] == 'forbidden'
    finally:
        bob.close()


def test_a_forwarded_poll_starts_without_votes(tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    cid = alice.create('group', ['bob'])['id']
    other = alice.create('group', ['bob'])['id']
    m = poll(alice, cid)
    vote(bob, cid, m['id'], 1)
    r = alice.post(f'conversations/{cid}/messages/{m["id"]}/forward',
                   {'conversation_id': other})
    assert r.status == 201, r
    assert r.json['type'] == 'poll' and counts(r.json) == [0, 0, 0]


# POST conversations/direct, the get-or-create alias (issue 15)

def test_direct_alias_gets_or_makes_the_one_conversation(tenant, new_tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    r = alice.post('conversations/direct', {'user_id': 'bob'})
    assert r.status == 201 and r.json['type'] == 'direct', r
    again = bob.post('conversations/direct', {'user_id': 'alice'})
    assert again.status == 200 and again.json['id'] == r.json['id']
    expect_error(alice.post('conversations/direct', {'user_id': 'alice'}),
                 400, 'someone else')
    expect_error(alice.post('conversations/direct', {}), 400, 'user_id')
    expect_error(alice.post('conversations/direct', {'user_id': 7}), 400,
                 'user_id')
    other = new_tenant().client('alice')
    assert other.post('conversations/direct',
                      {'user_id': 'bob'}).json['id'] != r.json['id']
