"""Conversations (API.md section 4): create, get, list, update, archive,
my settings; and what every route answers to bad input.

Each test works in a tenant of its own on the shared nginx.  Reading and
unread counts come with messages and are tested there.
"""

import concurrent.futures
import http.client
import json
import os
import pathlib
import socket
import time

import pytest

from chatclient import TIMESTAMP, expect_error

MAX_ID = 2 ** 53 - 1

CONVERSATION_KEYS = {'id', 'type', 'title', 'description', 'avatar_url',
                     'owner_id', 'created_at', 'updated_at', 'last_seq',
                     'last_message', 'member_count', 'me'}
ME_KEYS = {'role', 'pinned', 'archived', 'muted_until', 'last_read_seq',
           'unread_count', 'unread_mentions'}


def ids(c, query=''):
    r = c.get('conversations' + query)
    assert r.status == 200, r
    assert set(r.json) == {'items', 'next_cursor'}
    return [x['id'] for x in r.json['items']]


def walk(c, limit, query=''):
    """Every page of the list, in order: (ids, number of pages)."""
    out, pages, cursor = [], 0, None
    while True:
        q = f'?limit={limit}{query}'
        if cursor is not None:
            q += f'&cursor={cursor}'
        r = c.get('conversations' + q)
        assert r.status == 200, r
        pages += 1
        items = r.json['items']
        assert len(items) <= limit
        out += [x['id'] for x in items]
        cursor = r.json['next_cursor']
        if cursor is None:
            return out, pages
        assert isinstance(cursor, str) and cursor
        assert len(items) == limit, r
        assert pages < 100


def group(c, members=('bob', 'carol'), **fields):
    r = c.post('conversations', dict(type='group', member_ids=list(members),
                                     **fields))
    assert r.status == 201, r
    return r.json


def make_admin(owner, cid, user, role='admin'):
    r = owner.patch(f'conversations/{cid}/members/{user}', {'role': role})
    assert r.status == 200 and r.json['role'] == role, r


# create

def test_create_group_is_201_with_the_conversation(tenant):
    alice = tenant.client('alice')
    r = alice.post('conversations', {
        'type': 'group', 'title': 'Team', 'description': 'the team',
        'avatar_url': 'https://example.com/a.png',
        'member_ids': ['bob', 'carol']})
    assert r.status == 201, r
    assert r.headers['Content-Type'].startswith('application/json')
    c = r.json
    assert CONVERSATION_KEYS <= set(c), c
    assert isinstance(c['id'], int) and 0 < c['id'] <= MAX_ID
    assert c['type'] == 'group'
    assert c['title'] == 'Team'
    assert c['description'] == 'the team'
    assert c['avatar_url'] == 'https://example.com/a.png'
    assert c['owner_id'] == 'alice'
    assert TIMESTAMP.match(c['created_at']), c
    assert TIMESTAMP.match(c['updated_at']), c
    assert c['last_seq'] == 0
    assert c['last_message'] is None
    assert c['member_count'] == 3
    assert set(c['me']) >= ME_KEYS
    assert {k: c['me'][k] for k in ME_KEYS} == {
        'role': 'owner', 'pinned': False, 'archived': False,
        'muted_until': None, 'last_read_seq': 0, 'unread_count': 0,
        'unread_mentions': 0}
    members = alice.get(f'conversations/{c["id"]}/members').json['items']
    assert [(m['user_id'], m['role']) for m in members] == [
        ('alice', 'owner'), ('bob', 'member'), ('carol', 'member')]


def test_create_channel_is_201(tenant):
    r = tenant.client('alice').post('conversations', {
        'type': 'channel', 'title': 'news', 'member_ids': ['bob']})
    assert r.status == 201, r
    assert r.json['type'] == 'channel' and r.json['title'] == 'news'
    assert r.json['owner_id'] == 'alice' and r.json['member_count'] == 2


def test_create_without_members_has_the_creator_alone(tenant):
    r = tenant.client('alice').post('conversations', {'type': 'group'})
    assert r.status == 201, r
    assert r.json['member_count'] == 1
    assert r.json['title'] is None and r.json['description'] is None


def test_creator_and_duplicates_in_member_ids_count_once(tenant):
    alice = tenant.client('alice')
    c = group(alice, ['bob', 'alice', 'bob', 'carol', 'carol'])
    assert c['member_count'] == 3
    assert c['me']['role'] == 'owner'
    members = alice.get(f'conversations/{c["id"]}/members').json['items']
    assert [m['user_id'] for m in members] == ['alice', 'bob', 'carol']


def test_members_see_the_conversation_with_their_own_role(tenant):
    c = group(tenant.client('alice'))
    r = tenant.client('bob').get(f'conversations/{c["id"]}')
    assert r.status == 200, r
    assert r.json['id'] == c['id'] and r.json['owner_id'] == 'alice'
    assert r.json['me']['role'] == 'member'


def test_create_direct_is_201(tenant):
    r = tenant.client('alice').post('conversations', {
        'type': 'direct', 'member_ids': ['bob']})
    assert r.status == 201, r
    c = r.json
    assert c['type'] == 'direct'
    assert c['owner_id'] is None and c['title'] is None
    assert c['member_count'] == 2 and c['last_seq'] == 0
    assert c['me']['role'] == 'member'
    r = tenant.client('bob').get(f'conversations/{c["id"]}')
    assert r.status == 200 and r.json['me']['role'] == 'member', r


def test_direct_is_unique_per_pair(tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    first = alice.post('conversations', {'type': 'direct',
                                         'member_ids': ['bob']})
    assert first.status == 201, first
    cid = first.json['id']
    again = alice.post('conversations', {'type': 'direct',
                                         'member_ids': ['bob']})
    assert again.status == 200 and again.json['id'] == cid, again
    other_side = bob.post('conversations', {'type': 'direct',
                                            'member_ids': ['alice']})
    assert other_side.status == 200 and other_side.json['id'] == cid
    assert other_side.json['me']['role'] == 'member'
    listing_self = bob.post('conversations', {
        'type': 'direct', 'member_ids': ['alice', 'bob']})
    assert listing_self.status == 200 and listing_self.json['id'] == cid
    carol = alice.post('conversations', {'type': 'direct',
                                         'member_ids': ['carol']})
    assert carol.status == 201 and carol.json['id'] != cid
    assert sorted(ids(alice)) == sorted([cid, carol.json['id']])
    assert ids(bob) == [cid]


@pytest.mark.parametrize('member_ids', [[], ['alice'], ['bob', 'carol'],
                                        None])
def test_direct_needs_exactly_one_other_user(tenant, member_ids):
    body = {'type': 'direct'}
    if member_ids is not None:
        body['member_ids'] = member_ids
    expect_error(tenant.client('alice').post('conversations', body), 400,
                 'member_ids')


@pytest.mark.parametrize('field', ['title', 'description', 'avatar_url'])
def test_direct_takes_no_title_description_or_avatar(tenant, field):
    r = tenant.client('alice').post('conversations', {
        'type': 'direct', 'member_ids': ['bob'], field: 'x'})
    expect_error(r, 400)
    # nothing was created
    assert ids(tenant.client('bob')) == []


@pytest.mark.parametrize('body, field', [
    ({}, 'type'),
    ({'type': None}, 'type'),
    ({'type': 'room'}, 'type'),
    ({'type': 'GROUP'}, 'type'),
    ({'type': 5}, 'type'),
    ({'type': 'group', 'title': 'x' * 201}, 'title'),
    ({'type': 'group', 'title': '\u00e9' * 201}, 'title'),
    ({'type': 'group', 'title': '\U0001f600' * 201}, 'title'),
    ({'type': 'group', 'title': 5}, 'title'),
    ({'type': 'group', 'title': ['x']}, 'title'),
    ({'type': 'group', 'description': 'd' * 2001}, 'description'),
    ({'type': 'group', 'avatar_url': 'u' * 2049}, 'avatar_url'),
    ({'type': 'group', 'member_ids': 'bob'}, 'member_ids'),
    ({'type': 'group', 'member_ids': [1]}, 'member_ids'),
    ({'type': 'group', 'member_ids': ['']}, 'member_ids'),
    ({'type': 'group', 'member_ids': [None]}, 'member_ids'),
    ({'type': 'group', 'member_ids': ['u' * 129]}, 'member_ids'),
    ({'type': 'group', 'member_ids': ['a\u0001b']}, 'member_ids'),
    ({'type': 'group', 'member_ids': ['a\u007fb']}, 'member_ids'),
    ({'type': 'group', 'member_ids': [f'u{i}' for i in range(1001)]},
     'member_ids'),
    ({'type': 'group', 'members': ['bob']}, 'members'),
], ids=lambda v: str(v)[:40] if not isinstance(v, str) else v)
def test_create_with_bad_fields_is_400_naming_the_field(tenant, body,
                                                          field):
    alice = tenant.client('alice')
    expect_error(alice.post('conversations', body), 400, f'"{field}"')
    assert ids(alice) == []


@pytest.mark.parametrize('title', ['x' * 200, '\u00e9' * 200,
                                   '\U0001f600' * 200, '\u65e5' * 200])
def test_title_of_200_characters_is_accepted(tenant, title):
    c = group(tenant.client('alice'), title=title)
    assert c['title'] == title


def test_create_with_many_members(tenant):
    alice = tenant.client('alice')
    users = [f'user-{i:04}' for i in range(1000)]
    c = group(alice, users)
    assert c['member_count'] == 1001
    assert ids(tenant.client('user-0999')) == [c['id']]


# get

def test_get_is_the_conversation(tenant):
    alice = tenant.client('alice')
    c = group(alice, title='t')
    r = alice.get(f'conversations/{c["id"]}')
    assert r.status == 200, r
    assert r.json == c


def test_unknown_id_is_404(tenant):
    alice = tenant.client('alice')
    group(alice)
    for cid in (MAX_ID, 1, 999999999):
        expect_error(alice.get(f'conversations/{cid}'), 404)


# list

def test_empty_list(tenant):
    r = tenant.client('nobody').get('conversations')
    assert r.status == 200
    assert r.json == {'items': [], 'next_cursor': None}


def test_list_is_newest_first(tenant):
    alice = tenant.client('alice')
    made = [group(alice, title=str(i))['id'] for i in range(4)]
    assert ids(alice) == made[::-1]
    items = alice.get('conversations').json['items']
    assert all(CONVERSATION_KEYS <= set(x) for x in items)
    assert [x['title'] for x in items] == ['3', '2', '1', '0']
    # bob is in all of them, and sees the same order
    assert ids(tenant.client('bob')) == made[::-1]


def test_pinning_moves_a_conversation_to_the_top(tenant):
    alice = tenant.client('alice')
    a, b, c, d = (group(alice)['id'] for _ in range(4))
    assert ids(alice) == [d, c, b, a]

    r = alice.patch(f'conversations/{a}/me', {'pinned': True})
    assert r.status == 200 and r.json['me']['pinned'] is True, r
    assert ids(alice) == [a, d, c, b]

    alice.patch(f'conversations/{c}/me', {'pinned': True})
    assert ids(alice) == [c, a, d, b]     # pinned ones by activity, too

    alice.patch(f'conversations/{c}/me', {'pinned': False})
    assert ids(alice) == [a, d, c, b]
    # my pins are mine: bob's order is unchanged
    assert ids(tenant.client('bob')) == [d, c, b, a]


@pytest.mark.parametrize('limit', [1, 2, 3, 7, 8])
def test_paging_has_no_duplicate_and_no_gap(tenant, limit):
    alice = tenant.client('alice')
    made = [group(alice)['id'] for _ in range(7)]
    for cid in (made[1], made[4]):
        assert alice.patch(f'conversations/{cid}/me',
                           {'pinned': True}).status == 200
    expected = [made[4], made[1]] + [x for x in made[::-1]
                                     if x not in (made[1], made[4])]
    assert ids(alice, '?limit=100') == expected
    got, pages = walk(alice, limit)
    assert got == expected
    assert pages == max(1, -(-7 // limit))


def test_last_full_page_has_no_next_cursor(tenant):
    alice = tenant.client('alice')
    made = [group(alice)['id'] for _ in range(4)]
    r = alice.get('conversations?limit=2')
    assert r.json['next_cursor'] is not None
    r = alice.get(f'conversations?limit=2&cursor={r.json["next_cursor"]}')
    assert [x['id'] for x in r.json['items']] == made[1::-1]
    assert r.json['next_cursor'] is None
    r = alice.get('conversations?limit=4')
    assert len(r.json['items']) == 4 and r.json['next_cursor'] is None


def test_default_limit_is_50_and_500_is_clamped_to_100(tenant):
    alice = tenant.client('alice')
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: group(alice, [])['id'], range(101)))
    r = alice.get('conversations')
    assert len(r.json['items']) == 50 and r.json['next_cursor']
    r = alice.get('conversations?limit=500')
    assert r.status == 200, r
    assert len(r.json['items']) == 100
    assert r.json['next_cursor'] is not None
    first = [x['id'] for x in r.json['items']]
    r = alice.get(f'conversations?limit=500&cursor={r.json["next_cursor"]}')
    assert len(r.json['items']) == 1 and r.json['next_cursor'] is None
    assert sorted(first + [r.json['items'][0]['id']]) == sorted(made)


@pytest.mark.parametrize('query', ['limit=0', 'limit=-1', 'limit=x',
                                   'limit=', 'limit=1.5',
                                   'limit=99999999999999999999'])
def test_bad_limit_is_400(tenant, query):
    expect_error(tenant.client('alice').get('conversations?' + query), 400,
                 '"limit"')


@pytest.mark.parametrize('cursor', ['garbage', '', '1.2', '2.0.1',
                                    '1.x.3', '0.1.2.3', 'x' * 201])
def test_bad_cursor_is_400(tenant, cursor):
    alice = tenant.client('alice')
    group(alice)
    expect_error(alice.get(f'conversations?cursor={cursor}'), 400,
                 '"cursor"')


def test_archived_filter(tenant):
    alice = tenant.client('alice')
    a, b, c = (group(alice)['id'] for _ in range(3))
    assert ids(alice, '?archived=true') == []

    r = alice.patch(f'conversations/{b}/me', {'archived': True})
    assert r.status == 200 and r.json['me']['archived'] is True, r
    assert ids(alice) == [c, a]
    assert ids(alice, '?archived=false') == [c, a]
    assert ids(alice, '?archived=true') == [b]
    # still a member: it can be read
    assert alice.get(f'conversations/{b}').status == 200
    # archived only for me
    assert ids(tenant.client('bob')) == [c, b, a]

    alice.patch(f'conversations/{b}/me', {'archived': False})
    assert ids(alice) == [c, b, a]
    assert ids(alice, '?archived=true') == []


def test_archived_list_pages_too(tenant):
    alice = tenant.client('alice')
    made = [group(alice)['id'] for _ in range(5)]
    for cid in made[:4]:
        alice.patch(f'conversations/{cid}/me', {'archived': True})
    got, pages = walk(alice, 3, '&archived=true')
    assert got == made[3::-1] and pages == 2
    assert ids(alice) == [made[4]]


@pytest.mark.parametrize('value', ['maybe', '', 'yes', '2'])
def test_bad_archived_filter_is_400(tenant, value):
    expect_error(tenant.client('alice').get(
        f'conversations?archived={value}'), 400, '"archived"')


def test_unknown_query_parameters_are_ignored(tenant):
    alice = tenant.client('alice')
    c = group(alice)
    assert ids(alice, '?utm_source=x&_=123') == [c['id']]


# update

def test_owner_updates_the_conversation(stack, tenant):
    alice = tenant.client('alice')
    c = group(alice, title='old')
    time.sleep(0.002)
    r = alice.patch(f'conversations/{c["id"]}', {
        'title': 'new', 'description': 'about', 'avatar_url': '/a.png'})
    assert r.status == 200, r
    u = r.json
    assert (u['title'], u['description'], u['avatar_url']) == (
        'new', 'about', '/a.png')
    assert u['id'] == c['id'] and u['owner_id'] == 'alice'
    assert u['last_seq'] == 1
    assert u['me']['role'] == 'owner'
    assert u['updated_at'] > c['updated_at']
    assert u['created_at'] == c['created_at']
    assert tenant.client('bob').get(f'conversations/{c["id"]}').json[
        'title'] == 'new'

    events = stack.events(c['id'])
    assert [(s, t) for s, t, _ in events] == [(1, 'conversation_updated')]
    payload = events[0][2]
    assert payload['conversation_id'] == c['id'] and payload['seq'] == 1
    assert payload['conversation']['title'] == 'new'


def test_each_update_takes_the_next_seq(stack, tenant):
    alice = tenant.client('alice')
    c = group(alice)
    for i in range(1, 4):
        r = alice.patch(f'conversations/{c["id"]}', {'title': f't{i}'})
        assert r.status == 200 and r.json['last_seq'] == i, r
    assert alice.get(f'conversations/{c["id"]}').json['last_seq'] == 3
    assert [(s, t) for s, t, _ in stack.events(c['id'])] == [
        (1, 'conversation_updated'), (2, 'conversation_updated'),
        (3, 'conversation_updated')]
    assert [p['conversation']['title'] for _, _, p in
            stack.events(c['id'])] == ['t1', 't2', 't3']


def test_update_changes_only_what_is_named(tenant):
    alice = tenant.client('alice')
    c = group(alice, title='keep', description='d')
    r = alice.patch(f'conversations/{c["id"]}', {'avatar_url': '/x.png'})
    assert r.status == 200, r
    assert (r.json['title'], r.json['description'], r.json['avatar_url']) \
        == ('keep', 'd', '/x.png')
    r = alice.patch(f'conversations/{c["id"]}', {'title': None})
    assert r.status == 200 and r.json['title'] is None, r
    assert r.json['description'] == 'd'


def test_admin_updates_the_conversation(tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    c = group(alice)
    make_admin(alice, c['id'], 'bob')
    r = bob.patch(f'conversations/{c["id"]}', {'title': 'by admin'})
    assert r.status == 200 and r.json['title'] == 'by admin', r
    assert r.json['me']['role'] == 'admin'


@pytest.mark.parametrize('role', ['moderator', 'member'])
def test_moderator_or_member_cannot_update(stack, tenant, role):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    c = group(alice, title='t')
    if role != 'member':
        make_admin(alice, c['id'], 'bob', role)
    seq = alice.get(f'conversations/{c["id"]}').json['last_seq']
    expect_error(bob.patch(f'conversations/{c["id"]}', {'title': 'x'}), 403)
    after = alice.get(f'conversations/{c["id"]}').json
    assert after['title'] == 't' and after['last_seq'] == seq


def test_direct_cannot_be_updated(tenant):
    alice = tenant.client('alice')
    d = alice.create('direct', ['bob'])
    expect_error(alice.patch(f'conversations/{d["id"]}', {'title': 'x'}),
                 403)


@pytest.mark.parametrize('body, field', [
    ({}, 'body'),
    ({'name': 'x'}, 'name'),
    ({'title': 'x', 'owner_id': 'bob'}, 'owner_id'),
    ({'title': 'x' * 201}, 'title'),
    ({'title': '\U0001f600' * 201}, 'title'),
    ({'title': 5}, 'title'),
    ({'title': True}, 'title'),
    ({'title': {'text': 'x'}}, 'title'),
    ({'description': 'd' * 2001}, 'description'),
    ({'avatar_url': 7}, 'avatar_url'),
    ({'type': 'channel'}, 'type'),
], ids=lambda v: str(v)[:40] if not isinstance(v, str) else v)
def test_bad_update_is_400(stack, tenant, body, field):
    alice = tenant.client('alice')
    c = group(alice, title='t')
    expect_error(alice.patch(f'conversations/{c["id"]}', body), 400,
                 f'"{field}"')
    after = alice.get(f'conversations/{c["id"]}').json
    assert after['title'] == 't' and after['last_seq'] == 0
    assert stack.events(c['id']) == []


def test_update_title_of_200_multibyte_characters(tenant):
    alice = tenant.client('alice')
    c = group(alice)
    title = '\u00e9\U0001f600' * 100
    r = alice.patch(f'conversations/{c["id"]}', {'title': title})
    assert r.status == 200 and r.json['title'] == title, r


# archive (DELETE)

def test_owner_archives_the_conversation_and_it_becomes_read_only(
        stack, tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    c = group(alice, title='t')
    cid = c['id']
    r = alice.delete(f'conversations/{cid}')
    assert r.status == 204, r
    assert r.body == ''
    got = alice.get(f'conversations/{cid}').json
    assert got['last_seq'] == 1
    assert got.get('is_archived') is True
    assert [(s, t) for s, t, _ in stack.events(cid)] == [
        (1, 'conversation_updated')]

    expect_error(alice.patch(f'conversations/{cid}', {'title': 'x'}), 403)
    expect_error(alice.post(f'conversations/{cid}/members',
                            {'user_ids': ['dave']}), 403)
    expect_error(alice.patch(f'conversations/{cid}/members/bob',
                             {'role': 'admin'}), 403)
    # archiving again changes nothing
    assert alice.delete(f'conversations/{cid}').status == 204
    assert alice.get(f'conversations/{cid}').json['last_seq'] == 1
    # still there for its members, read-only
    assert bob.get(f'conversations/{cid}').json['title'] == 't'
    # my own settings are still mine to change
    r = bob.patch(f'conversations/{cid}/me', {'pinned': True})
    assert r.status == 200 and r.json['me']['pinned'] is True


def test_archived_for_everyone_is_archived_for_each_member(tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    cid = group(alice, title='t')['id']
    other = group(alice, title='kept')['id']
    assert alice.delete(f'conversations/{cid}').status == 204

    for c in (alice, bob):
        # out of the default list, in the archived one, archived for me
        assert ids(c) == [other]
        assert ids(c, '?archived=true') == [cid]
        got = c.get(f'conversations/{cid}').json
        assert got['is_archived'] is True and \
            got['me']['archived'] is True, got
    r = bob.get('unread')
    assert r.status == 200, r

    # my own unarchive shows it again, still read-only for everyone
    r = bob.patch(f'conversations/{cid}/me', {'archived': False})
    assert r.status == 200 and r.json['me']['archived'] is False and \
        r.json['is_archived'] is True, r
    assert ids(bob) == [other, cid] or ids(bob) == [cid, other]
    assert ids(bob, '?archived=true') == []
    assert ids(alice) == [other]
    expect_error(bob.post(f'conversations/{cid}/messages',
                          {'content': 'hi'}), 403)
    # archiving again changes no one's own choice
    assert alice.delete(f'conversations/{cid}').status == 204
    assert cid in ids(bob)


@pytest.mark.parametrize('role', ['admin', 'moderator', 'member'])
def test_only_the_owner_archives(tenant, role):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    c = group(alice)
    if role != 'member':
        make_admin(alice, c['id'], 'bob', role)
    expect_error(bob.delete(f'conversations/{c["id"]}'), 403)
    assert alice.get(f'conversations/{c["id"]}').json.get(
        'is_archived') is False
    # and it stays writable
    assert alice.patch(f'conversations/{c["id"]}',
                       {'title': 'x'}).status == 200


def test_direct_cannot_be_archived_for_everyone(tenant):
    alice = tenant.client('alice')
    d = alice.create('direct', ['bob'])
    expect_error(alice.delete(f'conversations/{d["id"]}'), 403)


# my settings

def test_my_settings(stack, tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    c = group(alice)
    cid = c['id']
    r = alice.patch(f'conversations/{cid}/me', {
        'pinned': True, 'archived': True,
        'muted_until': '2030-01-02T03:04:05Z'})
    assert r.status == 200, r
    assert CONVERSATION_KEYS <= set(r.json) and r.json['id'] == cid
    me = r.json['me']
    assert (me['pinned'], me['archived'], me['muted_until']) == (
        True, True, '2030-01-02T03:04:05.000Z')
    assert me['role'] == 'owner'

    # what is not named stays
    r = alice.patch(f'conversations/{cid}/me', {'archived': False})
    me = r.json['me']
    assert (me['pinned'], me['archived'], me['muted_until']) == (
        True, False, '2030-01-02T03:04:05.000Z')

    r = alice.patch(f'conversations/{cid}/me', {'muted_until': None})
    assert r.json['me']['muted_until'] is None
    assert r.json['me']['pinned'] is True

    got = alice.get(f'conversations/{cid}').json['me']
    assert (got['pinned'], got['archived'], got['muted_until']) == (
        True, False, None)
    # mine only, and no event
    bob_me = bob.get(f'conversations/{cid}').json['me']
    assert (bob_me['pinned'], bob_me['archived'],
            bob_me['muted_until']) == (False, False, None)
    assert alice.get(f'conversations/{cid}').json['last_seq'] == 0
    assert stack.events(cid) == []


@pytest.mark.parametrize('given, stored', [
    ('2030-01-01T00:00:00+02:00', '2029-12-31T22:00:00.000Z'),
    ('2030-06-15T12:30:45.123456Z', '2030-06-15T12:30:45.123Z'),
    ('2030-06-15t12:30:45.5-01:30', '2030-06-15T14:00:45.500Z'),
])
def test_muted_until_is_kept_in_utc_with_milliseconds(tenant, given,
                                                       stored):
    alice = tenant.client('alice')
    c = group(alice)
    r = alice.patch(f'conversations/{c["id"]}/me', {'muted_until': given})
    assert r.status == 200, r
    assert r.json['me']['muted_until'] == stored


@pytest.mark.parametrize('body, field', [
    ({}, 'body'),
    ({'muted_until': 'tomorrow'}, 'muted_until'),
    ({'muted_until': '2030-01-01'}, 'muted_until'),
    ({'muted_until': '2030-01-01 00:00:00Z'}, 'muted_until'),
    ({'muted_until': '2030-13-01T00:00:00Z'}, 'muted_until'),
    ({'muted_until': '2030-01-01T00:00:00'}, 'muted_until'),
    ({'muted_until': 1893456000}, 'muted_until'),
    ({'pinned': 'yes'}, 'pinned'),
    ({'pinned': 1}, 'pinned'),
    ({'pinned': None}, 'pinned'),
    ({'archived': 'true'}, 'archived'),
    ({'role': 'owner'}, 'role'),
], ids=lambda v: str(v)[:40] if not isinstance(v, str) else v)
def test_bad_settings_are_400(tenant, body, field):
    alice = tenant.client('alice')
    c = group(alice)
    expect_error(alice.patch(f'conversations/{c["id"]}/me', body), 400,
                 f'"{field}"')
    me = alice.get(f'conversations/{c["id"]}').json['me']
    assert (me['pinned'], me['archived'], me['muted_until']) == (
        False, False, None)


def test_impossible_date_is_400(tenant):
    alice = tenant.client('alice')
    c = group(alice)
    expect_error(alice.patch(f'conversations/{c["id"]}/me',
                             {'muted_until': '2030-02-31T00:00:00Z'}), 400)


def test_settings_of_a_direct_conversation(tenant):
    alice = tenant.client('alice')
    d = alice.create('direct', ['bob'])
    r = alice.patch(f'conversations/{d["id"]}/me', {'pinned': True})
    assert r.status == 200 and r.json['me']['pinned'] is True


# who may see what: every route

def routes(cid, user='bob'):
    """(method, path, body) of every Conversations and Members route."""
    return [
        ('GET', f'conversations/{cid}', None),
        ('PATCH', f'conversations/{cid}', {'title': 'x'}),
        ('DELETE', f'conversations/{cid}', None),
        ('PATCH', f'conversations/{cid}/me', {'pinned': True}),
        ('GET', f'conversations/{cid}/members', None),
        ('POST', f'conversations/{cid}/members', {'user_ids': ['zed']}),
        ('PATCH', f'conversations/{cid}/members/{user}', {'role': 'admin'}),
        ('DELETE', f'conversations/{cid}/members/{user}', None),
    ]


def test_non_member_gets_404_on_every_route(stack, tenant):
    alice, mallory = tenant.client('alice'), tenant.client('mallory')
    c = group(alice, title='t')
    for method, path, body in routes(c['id']) + routes(c['id'], 'mallory'):
        r = mallory.request(method, path, body)
        expect_error(r, 404)
        assert r.error[1] == 'conversation not found', (method, path, r)
    assert ids(mallory) == [] and ids(mallory, '?archived=true') == []
    got = alice.get(f'conversations/{c["id"]}').json
    assert got['title'] == 't' and got['last_seq'] == 0
    assert got['member_count'] == 3
    assert stack.events(c['id']) == []


def test_former_member_gets_404(tenant):
    alice, bob = tenant.client('alice'), tenant.client('bob')
    c = group(alice)
    assert bob.delete(f'conversations/{c["id"]}/members/bob').status == 204
    for method, path, body in routes(c['id'], 'carol'):
        expect_error(bob.request(method, path, body), 404)
    assert ids(bob) == []


def test_unknown_id_gets_404_on_every_route(tenant):
    alice = tenant.client('alice')
    group(alice)
    for method, path, body in routes(MAX_ID):
        expect_error(alice.request(method, path, body), 404)


@pytest.mark.parametrize('cid', ['abc', '0', '-1', '1.5', '1e3',
                                 str(MAX_ID + 1), '99999999999999999',
                                 '%31%32x', '0x10'])
def test_non_numeric_id_is_400(tenant, cid):
    alice = tenant.client('alice')
    for method, path, body in routes(cid):
        expect_error(alice.request(method, path, body), 400,
                     '"conversation_id"')


def test_user_id_in_the_path_over_256_bytes_is_400(tenant):
    alice = tenant.client('alice')
    c = group(alice)
    expect_error(alice.delete(f'conversations/{c["id"]}/members/'
                              + 'u' * 257), 400, '"user_id"')


# requests the server cannot take

def test_malformed_json_is_400(tenant):
    alice = tenant.client('alice')
    for raw in ('{"type": "group",', '{type: group}', "{'type': 'group'}",
                '{"type": "group"} x', 'nul', '{"type": "gr\\oup"}'):
        r = alice.post('conversations', raw=raw)
        expect_error(r, 400, 'not valid JSON')
    assert ids(alice) == []


@pytest.mark.parametrize('raw', ['[]', '[{"type": "group"}]', '"group"',
                                 '42', 'true', 'null'])
def test_body_that_is_not_an_object_is_400(tenant, raw):
    alice = tenant.client('alice')
    # jansson parses only objects and arrays at the top: the others are
    # "not valid JSON"; an array is "not an object"
    expect_error(alice.post('conversations', raw=raw), 400,
                 '"body"' if raw.startswith('[') else 'not valid JSON')
    c = group(alice)
    expect_error(alice.patch(f'conversations/{c["id"]}', raw=raw), 400)
    expect_error(alice.patch(f'conversations/{c["id"]}/me', raw=raw), 400)
    expect_error(alice.post(f'conversations/{c["id"]}/members', raw=raw),
                 400)


def test_duplicate_keys_are_400(tenant):
    r = tenant.client('alice').post(
        'conversations', raw='{"type": "group", "type": "channel"}')
    expect_error(r, 400)


def test_nul_in_a_string_is_400(tenant):
    r = tenant.client('alice').post(
        'conversations', raw='{"type": "group", "title": "a\\u0000b"}')
    expect_error(r, 400)


def test_invalid_utf8_is_400(tenant):
    r = tenant.client('alice').post(
        'conversations', raw=b'{"type": "group", "title": "\xff\xfe"}')
    expect_error(r, 400)


def test_empty_body_is_an_empty_object(tenant):
    # POST conversations without a body: "type" is missing
    alice = tenant.client('alice')
    expect_error(alice.post('conversations', raw=b''), 400, '"type"')


@pytest.mark.parametrize('ctype', ['text/plain', 'application/x-www-form-'
                                   'urlencoded', 'multipart/form-data',
                                   'application/jso', None])
def test_wrong_content_type_is_415(tenant, ctype):
    alice = tenant.client('alice')
    r = alice.post('conversations', raw='{"type": "group"}',
                   headers={'Content-Type': ctype})
    expect_error(r, 415)
    assert ids(alice) == []


@pytest.mark.parametrize('ctype', ['application/json; charset=utf-8',
                                   'Application/JSON'])
def test_json_content_type_with_parameters_is_taken(tenant, ctype):
    r = tenant.client('alice').post('conversations', raw='{"type": "group"}',
                                    headers={'Content-Type': ctype})
    assert r.status == 201, r


def test_body_over_chat_body_max_is_413(tenant):
    alice = tenant.client('alice')
    big = json.dumps({'type': 'group', 'description': 'd' * (256 * 1024)})
    expect_error(alice.post('conversations', raw=big), 413)
    assert ids(alice) == []


def test_body_just_under_chat_body_max_is_read(tenant):
    # read whole (past client_body_buffer_size it goes to a file): the
    # field check answers, not the size check
    alice = tenant.client('alice')
    body = json.dumps({'type': 'group', 'description': 'd' * 200000})
    assert len(body) < 256 * 1024
    expect_error(alice.post('conversations', raw=body), 400,
                 '"description"')


def test_chunked_body_is_read(tenant):
    alice = tenant.client('alice')
    r = alice.post('conversations', raw='{"type": "group", '
                   '"title": "chunked"}', chunked=True)
    assert r.status == 201, r
    assert r.json['title'] == 'chunked'
    big = json.dumps({'type': 'group', 'description': 'd' * 200000})
    expect_error(alice.post('conversations', raw=big, chunked=True), 400,
                 '"description"')


def test_chunked_body_over_chat_body_max_is_413(tenant):
    alice = tenant.client('alice')
    big = json.dumps({'type': 'group', 'description': 'd' * (300 * 1024)})
    expect_error(alice.post('conversations', raw=big, chunked=True), 413)


def _body_temp_bytes(nginx, temp):
    """Bytes in the workers' open client_body_temp files (nginx unlinks
    them at once, so they are seen through /proc)."""
    total = 0
    for pid in nginx.worker_pids():
        fds = pathlib.Path(f'/proc/{pid}/fd')
        for fd in fds.iterdir():
            try:
                if os.readlink(fd).startswith(temp):
                    total += os.stat(fd).st_size
            except OSError:
                pass
    return total


def test_chunked_body_past_chat_body_max_is_dropped_not_spooled(stack,
                                                                 tenant):
    # a chunked body has no length to refuse up front: what comes past
    # chat_body_max (256 KiB here) is read and dropped, so no more than
    # that is ever held in memory or in client_body_temp
    alice = tenant.client('alice')
    temp = str(stack.main.prefix / 'client_body_temp')
    s = socket.create_connection((alice.host, alice.port), timeout=5)
    try:
        s.sendall(b'POST /api/chat/conversations HTTP/1.1\r\n'
                  b'Host: chat\r\nContent-Type: application/json\r\n'
                  b'Authorization: Bearer ' + alice.token.encode() + b'\r\n'
                  b'Transfer-Encoding: chunked\r\n\r\n')
        chunk = b'%x\r\n' % 65536 + b' ' * 65536 + b'\r\n'
        for _ in range(64):
            s.sendall(chunk)
        time.sleep(0.3)
        spooled = _body_temp_bytes(stack.main, temp)
        s.sendall(b'0\r\n\r\n')
        answer = b''
        while b'\r\n\r\n' not in answer or not answer.endswith(b'}'):
            data = s.recv(65536)
            if not data:
                break
            answer += data
    finally:
        s.close()
    assert spooled <= 256 * 1024
    head, body = answer.decode().split('\r\n\r\n', 1)
    assert head.startswith('HTTP/1.1 413'), head
    assert json.loads(body)['error']['code'] == 'payload_too_large', body
    r = alice.post('conversations', {'type': 'group', 'title': 'after'})
    assert r.status == 201, r


@pytest.mark.parametrize('ctype', ['application/jsonx', 'application/json5',
                                   'text/plain'])
def test_body_of_another_type_than_json_is_415(tenant, ctype):
    alice = tenant.client('alice')
    r = alice.post('conversations', raw='{"type": "group"}',
                   headers={'Content-Type': ctype})
    expect_error(r, 415, 'application/json')


def test_json_with_charset_parameter_is_taken(tenant):
    alice = tenant.client('alice')
    r = alice.post('conversations', raw='{"type": "group"}',
                   headers={'Content-Type': 'application/json; charset=utf-8'})
    assert r.status == 201, r


def _raw_exchange(client, data, wait=0.5):
    """Sends bytes on one connection; returns all that comes back."""
    s = socket.create_connection((client.host, client.port), timeout=5)
    try:
        s.sendall(data)
        s.settimeout(wait)
        out = b''
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out.decode(errors='replace')
    finally:
        s.close()


@pytest.mark.parametrize('refusal', ['415', '413'])
def test_body_of_a_refused_request_is_not_taken_for_a_request(tenant,
                                                              refusal):
    alice = tenant.client('alice')
    body = b'GET /api/chat/health HTTP/1.1\r\nHost: x\r\n\r\n'
    ctype = 'text/plain'
    if refusal == '413':
        # empty lines before a request line are skipped by nginx
        body += b'\r\n' * (150 * 1024)
        ctype = 'application/json'
    head = (f'POST /api/chat/conversations HTTP/1.1\r\nHost: x\r\n'
            f'Authorization: Bearer {alice.token}\r\n'
            f'Content-Type: {ctype}\r\n'
            f'Content-Length: {len(body)}\r\n\r\n').encode()
    out = _raw_exchange(alice, head + body)
    assert out.startswith(f'HTTP/1.1 {refusal} '), out[:500]
    assert out.count('HTTP/1.1 ') == 1, out[:1000]


def test_body_over_client_max_body_size_is_a_json_413(tenant):
    alice = tenant.client('alice')
    big = json.dumps({'type': 'group', 'description': 'd' * (2 << 20)})
    expect_error(alice.post('conversations', raw=big), 413)


@pytest.mark.parametrize('path', ['conversations/abc',
                                  'conversations?limit=0'])
def test_a_bad_path_or_query_leaves_the_connection_usable(tenant, path):
    # the 400 is the whole answer: the action does not run afterwards
    alice = tenant.client('alice')
    conn = http.client.HTTPConnection(alice.host, alice.port, timeout=10)
    auth = {'Authorization': f'Bearer {alice.token}'}
    try:
        conn.request('GET', '/api/chat/' + path, headers=auth)
        r = conn.getresponse()
        r.read()
        assert r.status == 400
        time.sleep(0.3)         # the time the action takes, if it runs
        conn.request('GET', '/api/chat/conversations', headers=auth)
        r = conn.getresponse()
        assert r.status == 200
        assert json.loads(r.read())['items'] == []
    finally:
        conn.close()


@pytest.mark.parametrize('path', ['nope', 'conversations/1/nope',
                                  'conversations/1/members/bob/x',
                                  'conversations/', 'Conversations',
                                  'conversations/1/members/', ''])
def test_unknown_route_is_404(tenant, path):
    r = tenant.client('alice').get(path)
    expect_error(r, 404)


@pytest.mark.parametrize('method, path, allow', [
    ('PUT', 'conversations', 'GET, POST'),
    ('DELETE', 'conversations', 'GET, POST'),
    ('PATCH', 'conversations', 'GET, POST'),
    ('POST', 'conversations/1', 'GET, PATCH, DELETE'),
    ('PUT', 'conversations/1', 'GET, PATCH, DELETE'),
    ('GET', 'conversations/1/me', 'PATCH'),
    ('POST', 'conversations/1/me', 'PATCH'),
    ('DELETE', 'conversations/1/members', 'GET, POST'),
    ('GET', 'conversations/1/members/bob', 'PATCH, DELETE'),
    ('POST', 'health', 'GET'),
    ('OPTIONS', 'conversations', 'GET, POST'),
])
def test_wrong_method_is_405_with_allow(tenant, method, path, allow):
    r = tenant.client('alice').request(method, path)
    expect_error(r, 405)
    assert r.headers['Allow'] == allow


def test_wrong_method_is_405_before_auth(tenant):
    r = tenant.anonymous().request('PUT', 'conversations')
    expect_error(r, 405)
    assert r.headers['Allow'] == 'GET, POST'


def test_server_still_serves_after_bad_input(tenant):
    alice = tenant.client('alice')
    for raw in ('{', '[]', '\x00' * 10, '{"type": "group"' + ' ' * 1000):
        assert alice.post('conversations', raw=raw).status == 400
    alice.post('conversations', raw='x', headers={'Content-Type':
                                                  'text/plain'})
    alice.get('conversations/abc')
    alice.request('TRACE', 'conversations')
    c = group(alice, title='after')
    assert alice.get(f'conversations/{c["id"]}').json['title'] == 'after'
    assert ids(alice) == [c['id']]
    conn = http.client.HTTPConnection(alice.host, alice.port, timeout=5)
    conn.request('GET', '/api/chat/health')
    assert conn.getresponse().status == 200
    conn.close()
