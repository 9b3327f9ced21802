"""Members (API.md sections 4 and 6): listing, adding, roles, removal and
leaving, and the seq that every member change takes.

The role rules are those of sql/functions/40_members.sql: owner and admin
add members (an admin below admin only); the owner sets any role and hands
ownership over (becoming admin); an admin sets member and moderator on
members below; moderators and above remove members below them; anyone
leaves, except the owner while others remain (409).
"""

import concurrent.futures
import urllib.parse

import pytest

from chatclient import TIMESTAMP, expect_error

MEMBER_KEYS = {'user_id', 'name', 'role', 'joined_at', 'last_read_seq'}


def group(c, members=('bob', 'carol')):
    r = c.post('conversations', {'type': 'group', 'member_ids':
                                 list(members)})
    assert r.status == 201, r
    return r.json['id']


def members(c, cid, query=''):
    r = c.get(f'conversations/{cid}/members{query}')
    assert r.status == 200, r
    return r.json


def roles(c, cid):
    return {m['user_id']: m['role']
            for m in members(c, cid, '?limit=100')['items']}


def conv(c, cid):
    r = c.get(f'conversations/{cid}')
    assert r.status == 200, r
    return r.json


def set_role(c, cid, user, role):
    return c.patch(f'conversations/{cid}/members/{quote(user)}',
                   {'role': role})


def quote(user):
    return urllib.parse.quote(user, safe='')


def staffed(tenant):
    """A group of alice (owner), adam (admin), mo (moderator), and the
    members bob and carol; returns (cid, clients by name)."""
    cs = {u: tenant.client(u) for u in
          ('alice', 'adam', 'mo', 'bob', 'carol')}
    cid = group(cs['alice'], ['adam', 'mo', 'bob', 'carol'])
    assert set_role(cs['alice'], cid, 'adam', 'admin').status == 200
    assert set_role(cs['alice'], cid, 'mo', 'moderator').status == 200
    return cid, cs


def event_types(stack, cid):
    return [(seq, t) for seq, t, _ in stack.events(cid)]


# list

def test_list_members(tenant):
    alice = tenant.client('alice', name='Alice')
    cid = group(alice, ['bob', 'carol'])
    # a user's name is recorded when they change something
    group(tenant.client('bob', name='Bob'), [])
    page = members(alice, cid)
    assert page['next_cursor'] is None
    items = page['items']
    assert all(set(m) == MEMBER_KEYS for m in items), items
    assert [(m['user_id'], m['name'], m['role'], m['last_read_seq'])
            for m in items] == [('alice', 'Alice', 'owner', 0),
                                ('bob', 'Bob', 'member', 0),
                                ('carol', None, 'member', 0)]
    assert all(TIMESTAMP.match(m['joined_at']) for m in items)
    # any member lists them
    assert members(tenant.client('carol'), cid)['items'] == items


def test_a_new_name_in_the_token_replaces_the_old(tenant):
    cid = group(tenant.client('alice', name='Alice'))
    group(tenant.client('alice', name='Alice B.'), [])
    page = members(tenant.client('bob'), cid)
    assert page['items'][0]['user_id'] == 'alice'
    assert page['items'][0]['name'] == 'Alice B.'


def test_list_is_in_byte_order_of_user_ids(tenant):
    alice = tenant.client('alice')
    users = ['\u65e5\u672c', 'Zed', '\u00e9lan', 'bob', 'bob2', 'a b']
    cid = group(alice, users)
    got = [m['user_id'] for m in members(alice, cid)['items']]
    assert got == sorted(users + ['alice'], key=lambda u: u.encode())


@pytest.mark.parametrize('limit', [1, 2, 3, 8])
def test_list_pages_by_cursor(tenant, limit):
    alice = tenant.client('alice')
    users = [f'u{i}' for i in range(7)] + ['\u00e9', 'Z z']
    cid = group(alice, users)
    expected = sorted(users + ['alice'], key=lambda u: u.encode())
    got, cursor, pages = [], None, 0
    while True:
        q = f'?limit={limit}' + (f'&cursor={quote(cursor)}' if cursor
                                 else '')
        page = members(alice, cid, q)
        pages += 1
        assert len(page['items']) <= limit
        got += [m['user_id'] for m in page['items']]
        cursor = page['next_cursor']
        if cursor is None:
            break
        assert len(page['items']) == limit
        assert pages < 50
    assert got == expected
    assert pages == -(-len(expected) // limit)


def test_list_limit_is_clamped_to_100(tenant):
    alice = tenant.client('alice')
    cid = group(alice, [f'u{i:03}' for i in range(150)])
    page = members(alice, cid, '?limit=500')
    assert len(page['items']) == 100 and page['next_cursor']
    page2 = members(alice, cid, f'?limit=500&cursor={page["next_cursor"]}')
    assert len(page2['items']) == 51 and page2['next_cursor'] is None
    assert len(members(alice, cid)['items']) == 50


@pytest.mark.parametrize('query, field', [
    ('?cursor=zz', 'cursor'), ('?cursor=f', 'cursor'),
    ('?cursor=ff', 'cursor'), ('?limit=0', 'limit'),
    ('?limit=-5', 'limit'), ('?limit=ten', 'limit'),
])
def test_list_bad_paging_is_400(tenant, query, field):
    alice = tenant.client('alice')
    cid = group(alice)
    expect_error(alice.get(f'conversations/{cid}/members{query}'), 400,
                 f'"{field}"')


# add

def test_owner_adds_members(stack, tenant):
    alice = tenant.client('alice')
    cid = group(alice, ['bob'])
    r = alice.post(f'conversations/{cid}/members',
                   {'user_ids': ['dave', 'carol']})
    assert r.status == 200, r
    assert set(r.json) == {'items', 'next_cursor'}
    assert [(m['user_id'], m['role']) for m in r.json['items']] == [
        ('carol', 'member'), ('dave', 'member')]
    assert all(set(m) == MEMBER_KEYS for m in r.json['items'])
    c = conv(alice, cid)
    assert c['member_count'] == 4 and c['last_seq'] == 2
    assert event_types(stack, cid) == [(1, 'member_added'),
                                       (2, 'member_added')]
    payloads = [p for _, _, p in stack.events(cid)]
    assert [(p['user_id'], p['role'], p['seq'], p['conversation_id'])
            for p in payloads] == [('carol', 'member', 1, cid),
                                   ('dave', 'member', 2, cid)]
    # the new members are in
    r = tenant.client('dave').get(f'conversations/{cid}')
    assert r.status == 200 and r.json['me']['role'] == 'member'


def test_added_role_defaults_to_member_and_can_be_given(tenant):
    alice = tenant.client('alice')
    cid = group(alice, [])
    for user, role in (('m', 'moderator'), ('a', 'admin'), ('x', None)):
        body = {'user_ids': [user]}
        if role:
            body['role'] = role
        r = alice.post(f'conversations/{cid}/members', body)
        assert r.status == 200, r
        assert r.json['items'][0]['role'] == (role or 'member')
    assert roles(alice, cid) == {'alice': 'owner', 'm': 'moderator',
                                 'a': 'admin', 'x': 'member'}


def test_admin_adds_members_and_moderators_but_not_admins(stack, tenant):
    cid, cs = staffed(tenant)
    adam = cs['adam']
    r = adam.post(f'conversations/{cid}/members', {'user_ids': ['dave']})
    assert r.status == 200 and r.json['items'][0]['role'] == 'member', r
    r = adam.post(f'conversations/{cid}/members',
                  {'user_ids': ['erin'], 'role': 'moderator'})
    assert r.status == 200 and r.json['items'][0]['role'] == 'moderator', r
    seq = conv(adam, cid)['last_seq']
    expect_error(adam.post(f'conversations/{cid}/members',
                           {'user_ids': ['frank'], 'role': 'admin'}), 403,
                 'role')
    assert 'frank' not in roles(adam, cid)
    assert conv(adam, cid)['last_seq'] == seq


@pytest.mark.parametrize('who', ['mo', 'bob'])
def test_moderator_or_member_cannot_add(tenant, who):
    cid, cs = staffed(tenant)
    before = conv(cs['alice'], cid)
    expect_error(cs[who].post(f'conversations/{cid}/members',
                              {'user_ids': ['dave']}), 403)
    after = conv(cs['alice'], cid)
    assert 'dave' not in roles(cs['alice'], cid)
    assert (after['member_count'], after['last_seq']) == (
        before['member_count'], before['last_seq'])


def test_adding_existing_members_is_a_no_op(stack, tenant):
    alice = tenant.client('alice')
    cid = group(alice, ['bob'])
    set_role(alice, cid, 'bob', 'moderator')
    before = conv(alice, cid)
    assert before['last_seq'] == 1
    r = alice.post(f'conversations/{cid}/members',
                   {'user_ids': ['bob', 'alice'], 'role': 'admin'})
    assert r.status == 200, r
    assert [(m['user_id'], m['role']) for m in r.json['items']] == [
        ('alice', 'owner'), ('bob', 'moderator')]
    after = conv(alice, cid)
    assert (after['member_count'], after['last_seq']) == (2, 1)
    # a mix: only the new one takes a seq
    r = alice.post(f'conversations/{cid}/members',
                   {'user_ids': ['bob', 'carol', 'carol']})
    assert [(m['user_id'], m['role']) for m in r.json['items']] == [
        ('bob', 'moderator'), ('carol', 'member')]
    after = conv(alice, cid)
    assert (after['member_count'], after['last_seq']) == (3, 2)
    assert event_types(stack, cid) == [(1, 'member_updated'),
                                       (2, 'member_added')]


def test_adding_nobody_is_a_no_op(tenant):
    alice = tenant.client('alice')
    cid = group(alice)
    r = alice.post(f'conversations/{cid}/members', {'user_ids': []})
    assert r.status == 200, r
    assert r.json == {'items': [], 'next_cursor': None}
    assert conv(alice, cid)['last_seq'] == 0


def test_adding_500_members_at_once(tenant):
    alice = tenant.client('alice')
    cid = group(alice, [])
    r = alice.post(f'conversations/{cid}/members',
                   {'user_ids': [f'u{i:03}' for i in range(500)]})
    assert r.status == 200, r
    assert len(r.json['items']) == 500
    c = conv(alice, cid)
    assert c['member_count'] == 501 and c['last_seq'] == 500


def test_adds_racing_sends_of_a_caller_renamed_each_time(stack, tenant):
    # Every writer writes the caller's user row and then locks the
    # conversation.  Adding members must too: were it to lock first, an
    # add waiting on the row that a send renamed, while that send waits on
    # the lock the add holds, is a deadlock (a 503 for one of them).
    cid = group(tenant.client('alice'), ['bob'])
    adder = tenant.client('alice', name='Alice, adding')
    sender = tenant.client('alice', name='Alice, sending')

    def add(i):
        return adder.post(f'conversations/{cid}/members',
                          {'user_ids': [f'u{i:03}']})

    def send(i):
        return sender.post(f'conversations/{cid}/messages',
                           {'content': f'm{i}'})

    n = 240
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        got = list(pool.map(lambda i: (add if i % 2 else send)(i), range(n)))
    bad = [r for r in got if r.status not in (200, 201)]
    assert bad == [], f'{len(bad)} of {n} failed: {bad[:3]}'
    c = conv(tenant.client('bob'), cid)
    assert c['member_count'] == 2 + n // 2 and c['last_seq'] == n, c
    assert [s for s, _, _ in stack.events(cid)] == list(range(1, n + 1))


@pytest.mark.parametrize('body, field', [
    ({}, 'user_ids'),
    ({'user_ids': None}, 'user_ids'),
    ({'role': 'member'}, 'user_ids'),
    ({'user_ids': 'dave'}, 'user_ids'),
    ({'user_ids': {'dave': True}}, 'user_ids'),
    ({'user_ids': ['']}, 'user_ids'),
    ({'user_ids': ['dave', '']}, 'user_ids'),
    ({'user_ids': [5]}, 'user_ids'),
    ({'user_ids': [None]}, 'user_ids'),
    ({'user_ids': [['dave']]}, 'user_ids'),
    ({'user_ids': ['u' * 129]}, 'user_ids'),
    ({'user_ids': ['tab\there']}, 'user_ids'),
    ({'user_ids': [f'u{i}' for i in range(501)]}, 'user_ids'),
    ({'user_ids': ['dave'], 'role': 'owner'}, 'role'),
    ({'user_ids': ['dave'], 'role': 'king'}, 'role'),
    ({'user_ids': ['dave'], 'role': 'Admin'}, 'role'),
    ({'user_ids': ['dave'], 'role': 3}, 'role'),
    ({'user_ids': ['dave'], 'role': None}, 'role'),
    ({'user_ids': ['dave'], 'as': 'admin'}, 'as'),
], ids=lambda v: str(v)[:40] if not isinstance(v, str) else v)
def test_bad_add_is_400_naming_the_field(stack, tenant, body, field):
    alice = tenant.client('alice')
    cid = group(alice)
    expect_error(alice.post(f'conversations/{cid}/members', body), 400,
                 f'"{field}"')
    c = conv(alice, cid)
    assert (c['member_count'], c['last_seq']) == (3, 0)
    assert stack.events(cid) == []


def test_user_ids_of_128_bytes_are_taken(tenant):
    alice = tenant.client('alice')
    cid = group(alice, [])
    long_id = '\u00e9' * 64                      # 128 bytes
    r = alice.post(f'conversations/{cid}/members', {'user_ids': [long_id]})
    assert r.status == 200 and r.json['items'][0]['user_id'] == long_id, r


# roles

def test_owner_sets_any_role(stack, tenant):
    alice = tenant.client('alice')
    cid = group(alice, ['bob'])
    for i, role in enumerate(['admin', 'moderator', 'member', 'admin'], 1):
        r = set_role(alice, cid, 'bob', role)
        assert r.status == 200, r
        assert set(r.json) == MEMBER_KEYS
        assert (r.json['user_id'], r.json['role']) == ('bob', role)
        assert conv(alice, cid)['last_seq'] == i
    assert roles(alice, cid) == {'alice': 'owner', 'bob': 'admin'}
    events = stack.events(cid)
    assert [(s, t, p['user_id'], p['role']) for s, t, p in events] == [
        (1, 'member_updated', 'bob', 'admin'),
        (2, 'member_updated', 'bob', 'moderator'),
        (3, 'member_updated', 'bob', 'member'),
        (4, 'member_updated', 'bob', 'admin')]


def test_setting_the_same_role_takes_no_seq(tenant):
    alice = tenant.client('alice')
    cid = group(alice, ['bob'])
    r = set_role(alice, cid, 'bob', 'member')
    assert r.status == 200 and r.json['role'] == 'member', r
    assert conv(alice, cid)['last_seq'] == 0


def test_owner_hands_ownership_over(stack, tenant):
    alice, carol = tenant.client('alice'), tenant.client('carol')
    cid = group(alice, ['bob', 'carol'])
    r = set_role(alice, cid, 'carol', 'owner')
    assert r.status == 200, r
    assert (r.json['user_id'], r.json['role']) == ('carol', 'owner')
    c = conv(carol, cid)
    assert c['owner_id'] == 'carol'
    assert c['me']['role'] == 'owner'
    assert conv(alice, cid)['me']['role'] == 'admin'
    assert roles(alice, cid) == {'alice': 'admin', 'bob': 'member',
                                 'carol': 'owner'}
    assert c['last_seq'] == 2
    assert [(s, t, p['user_id'], p['role'])
            for s, t, p in stack.events(cid)] == [
        (1, 'member_updated', 'alice', 'admin'),
        (2, 'member_updated', 'carol', 'owner')]
    # the new owner rules, the old one is an admin now
    expect_error(alice.delete(f'conversations/{cid}'), 403)
    expect_error(set_role(alice, cid, 'carol', 'member'), 403)
    assert set_role(carol, cid, 'alice', 'member').status == 200
    assert carol.delete(f'conversations/{cid}').status == 204


def test_admin_sets_member_and_moderator_on_members_below(tenant):
    cid, cs = staffed(tenant)
    adam = cs['adam']
    r = set_role(adam, cid, 'bob', 'moderator')
    assert r.status == 200 and r.json['role'] == 'moderator', r
    r = set_role(adam, cid, 'mo', 'member')
    assert r.status == 200 and r.json['role'] == 'member', r
    r = set_role(adam, cid, 'bob', 'member')
    assert r.status == 200 and r.json['role'] == 'member', r


@pytest.mark.parametrize('target, role', [
    ('bob', 'admin'),          # a role not below the admin's own
    ('bob', 'owner'),
    ('alice', 'member'),       # the owner
    ('alice', 'admin'),
])
def test_admin_cannot_set_roles_at_or_above_their_own(tenant, target, role):
    cid, cs = staffed(tenant)
    before = roles(cs['alice'], cid)
    seq = conv(cs['alice'], cid)['last_seq']
    expect_error(set_role(cs['adam'], cid, target, role), 403)
    assert roles(cs['alice'], cid) == before
    assert conv(cs['alice'], cid)['last_seq'] == seq


def test_admin_cannot_change_another_admin(tenant):
    cid, cs = staffed(tenant)
    assert set_role(cs['alice'], cid, 'bob', 'admin').status == 200
    expect_error(set_role(cs['adam'], cid, 'bob', 'member'), 403)
    assert roles(cs['alice'], cid)['bob'] == 'admin'


@pytest.mark.parametrize('who, target, role', [
    ('mo', 'bob', 'moderator'),
    ('mo', 'bob', 'member'),
    ('mo', 'carol', 'admin'),
    ('bob', 'carol', 'moderator'),
    ('bob', 'mo', 'member'),
])
def test_moderator_or_member_cannot_set_roles(tenant, who, target, role):
    cid, cs = staffed(tenant)
    before = roles(cs['alice'], cid)
    expect_error(set_role(cs[who], cid, target, role), 403)
    assert roles(cs['alice'], cid) == before


@pytest.mark.parametrize('who, role', [
    ('alice', 'admin'), ('alice', 'owner'), ('adam', 'owner'),
    ('adam', 'moderator'), ('mo', 'admin'), ('bob', 'owner'),
    ('bob', 'member'),
])
def test_nobody_changes_their_own_role(tenant, who, role):
    cid, cs = staffed(tenant)
    before = roles(cs['alice'], cid)
    expect_error(set_role(cs[who], cid, who, role), 403)
    assert roles(cs['alice'], cid) == before


def test_role_of_a_non_member_is_404(tenant):
    alice = tenant.client('alice')
    cid = group(alice)
    r = set_role(alice, cid, 'stranger', 'admin')
    expect_error(r, 404)
    assert r.error[1] == 'member not found'


@pytest.mark.parametrize('body, field', [
    ({}, 'role'), ({'role': None}, 'role'), ({'role': 'king'}, 'role'),
    ({'role': 'OWNER'}, 'role'), ({'role': 1}, 'role'),
    ({'role': ['admin']}, 'role'), ({'role': 'admin', 'x': 1}, 'x'),
], ids=lambda v: str(v)[:40] if not isinstance(v, str) else v)
def test_bad_role_change_is_400(tenant, body, field):
    alice = tenant.client('alice')
    cid = group(alice)
    expect_error(alice.patch(f'conversations/{cid}/members/bob', body), 400,
                 f'"{field}"')
    assert roles(alice, cid)['bob'] == 'member'


def test_user_ids_with_any_characters_in_the_path(tenant):
    alice = tenant.client('alice')
    odd = ['bob@example.com', 'with space', '\u00e9l\u00e8ve', 'a+b',
           'slash%2Fless', 'semi;colon']
    cid = group(alice, odd)
    for user in odd:
        r = set_role(alice, cid, user, 'moderator')
        assert r.status == 200 and r.json['user_id'] == user, (user, r)
    for user in odd:
        r = alice.delete(f'conversations/{cid}/members/{quote(user)}')
        assert r.status == 204, (user, r)
    assert roles(alice, cid) == {'alice': 'owner'}


def test_user_id_in_the_path_that_is_not_utf8_is_400(tenant):
    alice = tenant.client('alice')
    cid = group(alice)
    expect_error(alice.delete(f'conversations/{cid}/members/%FF'), 400,
                 '"user_id"')
    expect_error(alice.patch(f'conversations/{cid}/members/b%C3',
                             {'role': 'admin'}), 400, '"user_id"')


# removal and leaving

def test_moderator_removes_a_member(stack, tenant):
    cid, cs = staffed(tenant)
    before = conv(cs['alice'], cid)
    r = cs['mo'].delete(f'conversations/{cid}/members/bob')
    assert r.status == 204 and r.body == '', r
    after = conv(cs['alice'], cid)
    assert after['member_count'] == before['member_count'] - 1
    assert after['last_seq'] == before['last_seq'] + 1
    assert 'bob' not in roles(cs['alice'], cid)
    seq, type_, payload = stack.events(cid)[-1]
    assert (seq, type_, payload['user_id']) == (after['last_seq'],
                                                'member_removed', 'bob')
    expect_error(cs['bob'].get(f'conversations/{cid}'), 404)
    assert cid not in [c['id'] for c in
                       cs['bob'].get('conversations').json['items']]


@pytest.mark.parametrize('who, target', [
    ('adam', 'mo'), ('adam', 'bob'), ('alice', 'adam'), ('alice', 'mo'),
    ('alice', 'bob'), ('mo', 'carol'),
])
def test_removal_of_members_below(tenant, who, target):
    cid, cs = staffed(tenant)
    r = cs[who].delete(f'conversations/{cid}/members/{target}')
    assert r.status == 204, r
    assert target not in roles(cs['alice'], cid)


@pytest.mark.parametrize('who, target', [
    ('mo', 'adam'), ('mo', 'alice'), ('adam', 'alice'), ('bob', 'carol'),
    ('bob', 'mo'), ('bob', 'alice'),
])
def test_removal_of_members_not_below_is_403(tenant, who, target):
    cid, cs = staffed(tenant)
    before = conv(cs['alice'], cid)
    expect_error(cs[who].delete(f'conversations/{cid}/members/{target}'),
                 403)
    after = conv(cs['alice'], cid)
    assert target in roles(cs['alice'], cid)
    assert (after['member_count'], after['last_seq']) == (
        before['member_count'], before['last_seq'])


def test_moderator_cannot_remove_another_moderator(tenant):
    cid, cs = staffed(tenant)
    set_role(cs['alice'], cid, 'bob', 'moderator')
    expect_error(cs['mo'].delete(f'conversations/{cid}/members/bob'), 403)


@pytest.mark.parametrize('who', ['adam', 'mo', 'bob'])
def test_anyone_leaves(stack, tenant, who):
    cid, cs = staffed(tenant)
    before = conv(cs['alice'], cid)
    r = cs[who].delete(f'conversations/{cid}/members/{who}')
    assert r.status == 204, r
    after = conv(cs['alice'], cid)
    assert after['member_count'] == before['member_count'] - 1
    assert after['last_seq'] == before['last_seq'] + 1
    assert stack.events(cid)[-1][1] == 'member_removed'
    assert stack.events(cid)[-1][2]['user_id'] == who
    expect_error(cs[who].get(f'conversations/{cid}'), 404)
    expect_error(cs[who].delete(f'conversations/{cid}/members/{who}'), 404)


def test_owner_cannot_leave_while_others_remain(tenant):
    alice = tenant.client('alice')
    cid = group(alice, ['bob'])
    r = alice.delete(f'conversations/{cid}/members/alice')
    expect_error(r, 409)
    assert 'owner' in r.error[1]
    c = conv(alice, cid)
    assert (c['member_count'], c['last_seq'], c['owner_id']) == (
        2, 0, 'alice')


def test_owner_leaves_after_handing_over(tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    cid = group(alice, ['bob'])
    assert set_role(alice, cid, 'bob', 'owner').status == 200
    assert alice.delete(f'conversations/{cid}/members/alice').status == 204
    c = conv(bob, cid)
    assert (c['member_count'], c['owner_id']) == (1, 'bob')
    assert roles(bob, cid) == {'bob': 'owner'}


def test_last_member_leaves(stack, tenant):
    alice = tenant.client('alice')
    cid = group(alice, ['bob'])
    assert alice.delete(f'conversations/{cid}/members/bob').status == 204
    r = alice.delete(f'conversations/{cid}/members/alice')
    assert r.status == 204, r
    expect_error(alice.get(f'conversations/{cid}'), 404)
    assert alice.get('conversations').json['items'] == []
    rows = stack.query('SELECT member_count, last_seq, archived_at IS NOT '
                       'NULL FROM chat.conversations WHERE id = %s', (cid,))
    assert rows == [(0, 2, True)]
    assert event_types(stack, cid) == [(1, 'member_removed'),
                                       (2, 'member_removed')]


def test_removing_a_non_member_is_404(tenant):
    alice = tenant.client('alice')
    cid = group(alice)
    r = alice.delete(f'conversations/{cid}/members/stranger')
    expect_error(r, 404)
    assert r.error[1] == 'member not found'
    assert conv(alice, cid)['last_seq'] == 0


def test_removed_member_can_be_added_again(tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    cid = group(alice, ['bob'])
    assert alice.delete(f'conversations/{cid}/members/bob').status == 204
    r = alice.post(f'conversations/{cid}/members', {'user_ids': ['bob']})
    assert r.status == 200 and r.json['items'][0]['role'] == 'member', r
    assert bob.get(f'conversations/{cid}').status == 200
    assert conv(alice, cid)['last_seq'] == 2


# direct conversations keep their two members

def test_direct_refuses_member_changes(stack, tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    d = alice.create('direct', ['bob'])['id']
    expect_error(alice.post(f'conversations/{d}/members',
                            {'user_ids': ['carol']}), 403)
    expect_error(set_role(alice, d, 'bob', 'admin'), 403)
    expect_error(set_role(bob, d, 'alice', 'owner'), 403)
    expect_error(alice.delete(f'conversations/{d}/members/bob'), 403)
    expect_error(alice.delete(f'conversations/{d}/members/alice'), 403)
    expect_error(bob.delete(f'conversations/{d}/members/bob'), 403)
    assert roles(alice, d) == {'alice': 'member', 'bob': 'member'}
    c = conv(alice, d)
    assert (c['member_count'], c['last_seq']) == (2, 0)
    assert stack.events(d) == []


# the seq

def test_every_member_change_takes_the_next_seq(stack, tenant):
    alice = tenant.client('alice')
    cid = group(alice, ['bob'])
    steps = [
        lambda: alice.post(f'conversations/{cid}/members',
                           {'user_ids': ['dave']}),
        lambda: alice.post(f'conversations/{cid}/members',
                           {'user_ids': ['erin', 'frank']}),
        lambda: set_role(alice, cid, 'dave', 'moderator'),
        lambda: tenant.client('dave').delete(
            f'conversations/{cid}/members/erin'),
        lambda: tenant.client('frank').delete(
            f'conversations/{cid}/members/frank'),
        lambda: alice.patch(f'conversations/{cid}', {'title': 'x'}),
        lambda: set_role(alice, cid, 'bob', 'owner'),
    ]
    for step in steps:
        r = step()
        assert r.status in (200, 204), r
    assert [(s, t) for s, t, _ in stack.events(cid)] == [
        (1, 'member_added'), (2, 'member_added'), (3, 'member_added'),
        (4, 'member_updated'), (5, 'member_removed'), (6, 'member_removed'),
        (7, 'conversation_updated'), (8, 'member_updated'),
        (9, 'member_updated')]
    assert conv(alice, cid)['last_seq'] == 9
    assert all(p['seq'] == s and p['conversation_id'] == cid
               and p['type'] == t for s, t, p in stack.events(cid))
    c = conv(alice, cid)
    assert c['member_count'] == 3 and c['owner_id'] == 'bob'


# malformed JSON

@pytest.mark.parametrize('raw', ['{"role":', '[]', '{"role": "admin"',
                                 '"admin"'])
def test_malformed_json_of_member_changes_is_400(stack, tenant, raw):
    alice = tenant.client('alice')
    cid = group(alice)
    expect_error(alice.patch(f'conversations/{cid}/members/bob', raw=raw),
                 400)
    expect_error(alice.post(f'conversations/{cid}/members', raw=raw), 400)
    assert roles(alice, cid) == {'alice': 'owner', 'bob': 'member',
                                 'carol': 'member'}
    assert conv(alice, cid)['last_seq'] == 0
    assert stack.events(cid) == []
