"""Presence history (docs/api.md, Presence): GET presence adds, for the
one who asks, since when a user is away, how long it was online today and
the conversation it looks at (to members of it); GET presence/days is how
long I was online each day, kept from the transitions the module reports.
"""

import time

import chatstack
from chatclient import expect_error
from wsclient import ChatWS


def ws(tenant, user):
    c = ChatWS(tenant.stack.main.port, tenant.token(user))
    c.connect()
    c.start()
    return c


def presence_of(client, user):
    (p,) = client.get(f'presence?user_ids={user}').json
    return p


def test_what_a_user_looks_at_is_for_its_co_members(tenant):
    alice = tenant.client('alice')
    cid = alice.create('group', ['bob'])['id']
    bob, carol = tenant.client('bob'), tenant.client('carol')
    c = ws(tenant, 'alice')
    try:
        chatstack.wait_for(lambda: presence_of(bob, 'alice')['status']
                           == 'online', 10, 'alice online')
        assert presence_of(bob, 'alice')['viewing'] is None
        assert c.request('join', conversation_id=cid)['type'] == 'ack'
        assert presence_of(bob, 'alice')['viewing'] == cid
        # not a member: not told what alice looks at
        assert presence_of(carol, 'alice')['viewing'] is None
        assert c.request('leave', conversation_id=cid)['type'] == 'ack'
        assert presence_of(bob, 'alice')['viewing'] is None
        c.request('join', conversation_id=cid)
    finally:
        c.close()
    # gone offline: nothing looked at
    chatstack.wait_for(lambda: presence_of(bob, 'alice')['status']
                       == 'offline', 10, 'alice offline')
    p = presence_of(bob, 'alice')
    assert (p['viewing'], p['online_today'], p['away_since']) == \
        (None, None, None)


def test_away_since_follows_the_chosen_status(tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    alice.create('direct', ['bob'])
    c = ws(tenant, 'alice')
    try:
        chatstack.wait_for(lambda: presence_of(bob, 'alice')['status']
                           == 'online', 10, 'alice online')
        assert presence_of(bob, 'alice')['away_since'] is None
        alice.put('presence/me', {'status': 'away'})
        since = presence_of(bob, 'alice')['away_since']
        assert since is not None
        # still away: the same since
        alice.put('presence/me', {'custom_status': 'lunch'})
        assert presence_of(bob, 'alice')['away_since'] == since
        alice.put('presence/me', {'status': 'online'})
        assert presence_of(bob, 'alice')['away_since'] is None
    finally:
        c.close()


def test_time_online_is_kept_by_day(tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    alice.create('direct', ['bob'])
    assert alice.get('presence/days').json['items'] == []
    c = ws(tenant, 'alice')
    try:
        chatstack.wait_for(lambda: presence_of(bob, 'alice')['status']
                           == 'online', 10, 'alice online')
        time.sleep(2.2)
        # counted while online, before it is kept (from when the module
        # announced the connection, a moment after it came)
        assert presence_of(bob, 'alice')['online_today'] >= 1
    finally:
        c.close()
    chatstack.wait_for(lambda: alice.get('presence/days').json['items'],
                       10, 'the day kept')
    (day,) = alice.get('presence/days').json['items']
    assert 1 <= day['seconds'] <= 60
    assert day['day'] == time.strftime('%Y-%m-%d', time.gmtime())
    # mine only; bob has none
    assert bob.get('presence/days').json['items'] == []
    expect_error(alice.get('presence/days?days=0'), 400, 'days')
    expect_error(alice.get('presence/days?days=91'), 400, 'days')
    expect_error(alice.get('presence/days?days=x'), 400, 'days')
