"""Read state (API.md section 4 read, GET unread; section 6 Read state):
the read position, unread counts and unread mentions per conversation and
in total.

Unread counts count messages of others after the read position, including
messages deleted since (the count is a difference of message counters);
events that are not messages (reactions, member changes) do not count.
"""

import time
import urllib.parse

import psycopg2
import pytest


ERROR_CODES = {400: 'bad_request', 403: 'forbidden', 404: 'not_found'}


def expect_error(r, status, message=None):
    assert r.status == status, r
    body = r.json
    assert set(body) == {'error'}, r
    assert body['error']['code'] == ERROR_CODES[status], r
    assert body['error']['message'], r
    if message is not None:
        assert message in body['error']['message'], r


def new_conv(client, type='group', members=(), **fields):
    return client.create(type, members, **fields)['id']


def sent(client, cid, content='hello', **fields):
    r = client.post(f'conversations/{cid}/messages',
                    dict(content=content, **fields))
    assert r.status == 201, r
    return r.json


def me(client, cid):
    r = client.get(f'conversations/{cid}')
    assert r.status == 200, r
    return r.json['me']


def last_seq(client, cid):
    r = client.get(f'conversations/{cid}')
    assert r.status == 200, r
    return r.json['last_seq']


def read(client, cid, seq=..., **body):
    if seq is not ...:
        body['seq'] = seq
    r = client.post(f'conversations/{cid}/read', body if body else None)
    return r


def read_ok(client, cid, seq=...):
    r = read(client, cid, seq)
    assert r.status == 200, r
    assert set(r.json) == {'last_read_seq'}, r
    return r.json['last_read_seq']


def unread(client):
    r = client.get('unread')
    assert r.status == 200, r
    assert set(r.json) == {'total', 'conversations'}, r
    for c in r.json['conversations']:
        assert set(c) == {'id', 'unread_count', 'unread_mentions'}, r
    return r.json


def unread_map(client):
    return {c['id']: (c['unread_count'], c['unread_mentions'])
            for c in unread(client)['conversations']}


def counts(client, cid):
    m = me(client, cid)
    return m['unread_count'], m['unread_mentions']


@pytest.fixture
def trio(tenant):
    """bob's group with alice and carol; bob has posted three messages."""
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(bob, 'group', ['alice', 'carol'])
    msgs = [sent(bob, cid, f'm{i}') for i in range(1, 4)]
    return alice, bob, cid, msgs


@pytest.fixture
def other_tenant(tenant):
    """A second fresh tenant on the same nginx (its users may bear the same
    names as those of `tenant`)."""
    return type(tenant)(tenant.stack, tenant.nginx)


# marking read

def test_read_without_seq_reads_up_to_last_seq(trio):
    alice, bob, cid, msgs = trio
    assert counts(alice, cid) == (3, 0)
    assert me(alice, cid)['last_read_seq'] == 0
    assert read_ok(alice, cid) == 3
    assert me(alice, cid)['last_read_seq'] == 3
    assert counts(alice, cid) == (0, 0)


def test_read_with_an_empty_object_reads_up_to_last_seq(trio):
    alice, bob, cid, msgs = trio
    r = alice.post(f'conversations/{cid}/read', {})
    assert r.status == 200 and r.json == {'last_read_seq': 3}, r


def test_read_up_to_an_explicit_seq(trio):
    alice, bob, cid, msgs = trio
    assert read_ok(alice, cid, msgs[0]['seq']) == msgs[0]['seq']
    assert me(alice, cid)['last_read_seq'] == msgs[0]['seq']
    assert counts(alice, cid) == (2, 0)
    assert read_ok(alice, cid, msgs[1]['seq']) == msgs[1]['seq']
    assert counts(alice, cid) == (1, 0)


def test_read_never_moves_backwards(trio):
    alice, bob, cid, msgs = trio
    assert read_ok(alice, cid, 2) == 2
    assert read_ok(alice, cid, 1) == 2
    assert read_ok(alice, cid, 0) == 2
    assert read_ok(alice, cid, 2) == 2
    assert me(alice, cid)['last_read_seq'] == 2
    assert counts(alice, cid) == (1, 0)


def test_read_above_last_seq_is_clamped(trio):
    alice, bob, cid, msgs = trio
    assert read_ok(alice, cid, 1000) == 3
    assert me(alice, cid)['last_read_seq'] == 3
    # what comes later is unread
    sent(bob, cid, 'm4')
    assert counts(alice, cid) == (1, 0)
    assert read_ok(alice, cid, 9007199254740991) == 4


def test_read_of_zero_on_a_fresh_conversation(tenant):
    alice = tenant.client('alice')
    cid = new_conv(tenant.client('bob'), 'group', ['alice'])
    assert read_ok(alice, cid) == 0
    assert read_ok(alice, cid, 0) == 0
    assert read_ok(alice, cid, 5) == 0


def test_read_takes_no_seq(trio):
    alice, bob, cid, msgs = trio
    read_ok(alice, cid)
    assert last_seq(alice, cid) == 3


def test_read_is_per_user(trio, tenant):
    alice, bob, cid, msgs = trio
    carol = tenant.client('carol')
    read_ok(alice, cid)
    assert counts(carol, cid) == (3, 0)
    assert me(carol, cid)['last_read_seq'] == 0
    members = {m['user_id']: m['last_read_seq'] for m in
               bob.get(f'conversations/{cid}/members').json['items']}
    assert members == {'alice': 3, 'bob': 3, 'carol': 0}


def test_read_up_to_an_event_that_is_not_a_message(trio):
    alice, bob, cid, msgs = trio
    r = bob.post(f'conversations/{cid}/messages/{msgs[0]["id"]}/reactions',
                 {'emoji': 'ok'})
    assert r.status == 200, r
    sent(bob, cid, 'm4')            # seq 5
    assert counts(alice, cid) == (4, 0)
    assert read_ok(alice, cid, 4) == 4
    assert counts(alice, cid) == (1, 0)


def test_read_in_a_conversation_archived_by_its_owner(trio):
    alice, bob, cid, msgs = trio
    assert bob.delete(f'conversations/{cid}').status == 204
    assert read_ok(alice, cid) == last_seq(alice, cid)
    assert counts(alice, cid) == (0, 0)


@pytest.mark.parametrize('body', [
    {'seq': -1}, {'seq': '5'}, {'seq': 1.5}, {'seq': True}, {'seq': None},
    {'seq': [1]}, {'seq': 9007199254740993}, {'upto': 3},
])
def test_read_bad_input_is_400(trio, body):
    alice, bob, cid, msgs = trio
    expect_error(alice.post(f'conversations/{cid}/read', body), 400)
    assert me(alice, cid)['last_read_seq'] == 0


def test_read_body_that_is_not_json_is_400(trio):
    alice, bob, cid, msgs = trio
    expect_error(alice.post(f'conversations/{cid}/read', raw='seq=3'), 400)
    expect_error(alice.post(f'conversations/{cid}/read', raw='[3]'), 400)


def test_read_by_a_non_member_is_404(trio, tenant, other_tenant):
    alice, bob, cid, msgs = trio
    expect_error(read(tenant.client('eve'), cid), 404)
    expect_error(read(other_tenant.client('alice'), cid), 404)
    expect_error(read(alice, 9007199254740991), 404)
    expect_error(alice.post('conversations/abc/read'), 400)


def test_read_after_leaving_is_404(trio):
    alice, bob, cid, msgs = trio
    assert alice.delete(f'conversations/{cid}/members/alice').status == 204
    expect_error(read(alice, cid), 404)


# sending and reading

def test_sending_marks_the_conversation_read_for_the_sender(trio):
    alice, bob, cid, msgs = trio
    assert counts(alice, cid) == (3, 0)
    m = sent(alice, cid, 'my answer')
    assert me(alice, cid)['last_read_seq'] == m['seq']
    assert counts(alice, cid) == (0, 0)
    # one's own messages never count as unread
    assert counts(bob, cid) == (1, 0)
    sent(bob, cid, 'more')
    assert counts(bob, cid) == (0, 0)
    assert counts(alice, cid) == (1, 0)


def test_own_messages_are_never_unread(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    for i in range(3):
        sent(alice, cid, f'monologue {i}')
    assert counts(alice, cid) == (0, 0)
    assert unread(alice) == {'total': 0, 'conversations': []}


def test_unread_counts_only_messages(trio, tenant):
    alice, bob, cid, msgs = trio
    read_ok(alice, cid)
    bob.post(f'conversations/{cid}/messages/{msgs[0]["id"]}/reactions',
             {'emoji': 'ok'})
    r = bob.post(f'conversations/{cid}/members', {'user_ids': ['dave']})
    assert r.status == 200, r
    r = bob.patch(f'conversations/{cid}', {'title': 'renamed'})
    assert r.status == 200, r
    assert counts(alice, cid) == (0, 0)
    sent(bob, cid, 'a message')
    assert counts(alice, cid) == (1, 0)


def test_unread_counts_include_messages_deleted_later(trio):
    alice, bob, cid, msgs = trio
    assert bob.delete(f'conversations/{cid}/messages/{msgs[1]["id"]}') \
        .status == 204
    assert counts(alice, cid) == (3, 0)
    read_ok(alice, cid)
    assert counts(alice, cid) == (0, 0)


def test_edits_and_replies(trio):
    alice, bob, cid, msgs = trio
    read_ok(alice, cid)
    r = bob.patch(f'conversations/{cid}/messages/{msgs[0]["id"]}',
                  {'content': 'edited'})
    assert r.status == 200, r
    assert counts(alice, cid) == (0, 0)
    sent(bob, cid, 'a reply', reply_to=msgs[0]['id'])
    assert counts(alice, cid) == (1, 0)


# mentions

def test_unread_mentions_count_mentions_after_the_read_position(trio,
                                                                tenant):
    alice, bob, cid, msgs = trio
    carol = tenant.client('carol')
    m1 = sent(bob, cid, '@alice look', mentions=['alice'])
    sent(bob, cid, '@carol look', mentions=['carol'])
    m3 = sent(carol, cid, '@alice @bob', mentions=['alice', 'bob'])
    assert counts(alice, cid) == (6, 2)
    assert counts(bob, cid) == (1, 1)
    assert counts(carol, cid) == (0, 0)  # carol's message read it all
    read_ok(alice, cid, m1['seq'])
    assert counts(alice, cid) == (2, 1)
    read_ok(alice, cid, m3['seq'] - 1)
    assert counts(alice, cid) == (1, 1)
    read_ok(alice, cid)
    assert counts(alice, cid) == (0, 0)


def test_mentioning_oneself_is_no_unread_mention(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    sent(alice, cid, 'note to @alice', mentions=['alice'])
    assert counts(alice, cid) == (0, 0)
    assert counts(tenant.client('bob'), cid) == (1, 0)


def test_sending_clears_ones_unread_mentions(trio):
    alice, bob, cid, msgs = trio
    sent(bob, cid, '@alice?', mentions=['alice'])
    assert counts(alice, cid) == (4, 1)
    sent(alice, cid, 'yes')
    assert counts(alice, cid) == (0, 0)


# GET unread

def test_get_unread_sums_over_conversations_with_something_unread(tenant):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    carol = tenant.client('carol')
    quiet = new_conv(alice, 'group', ['bob'])
    busy = new_conv(bob, 'group', ['alice'])
    direct = new_conv(carol, 'direct', ['alice'])
    read_all = new_conv(bob, 'group', ['alice'])
    assert unread(alice) == {'total': 0, 'conversations': []}
    sent(alice, quiet, 'only me')
    for i in range(4):
        sent(bob, busy, f'b{i}')
    sent(bob, busy, '@alice', mentions=['alice'])
    sent(carol, direct, 'hey')
    sent(carol, direct, 'you there?')
    sent(bob, read_all, 'seen')
    read_ok(alice, read_all)
    u = unread(alice)
    assert u['total'] == 7
    assert sorted((c['id'], c['unread_count'], c['unread_mentions'])
                  for c in u['conversations']) == sorted(
        [(busy, 5, 1), (direct, 2, 0)])
    assert u['total'] == sum(c['unread_count'] for c in u['conversations'])
    # the same numbers as the conversations show
    for cid, (n, mentions) in unread_map(alice).items():
        assert counts(alice, cid) == (n, mentions)
    # and bob sees his own
    assert unread(bob) == {'total': 1, 'conversations': [
        {'id': quiet, 'unread_count': 1, 'unread_mentions': 0}]}


def test_get_unread_is_per_tenant(tenant, other_tenant):
    alice = tenant.client('alice')
    cid = new_conv(tenant.client('bob'), 'group', ['alice'])
    sent(tenant.client('bob'), cid, 'x')
    assert unread(alice)['total'] == 1
    other = other_tenant
    assert unread(other.client('alice')) == {'total': 0, 'conversations': []}


def test_get_unread_counts_in_conversation_list_agree(trio):
    alice, bob, cid, msgs = trio
    items = alice.get('conversations').json['items']
    mine = [c for c in items if c['id'] == cid][0]
    assert mine['me']['unread_count'] == 3
    assert mine['me']['unread_mentions'] == 0
    assert mine['me']['last_read_seq'] == 0


@pytest.fixture
def db(stack):
    conn = psycopg2.connect(stack.pg.conninfo)
    conn.autocommit = True
    yield conn
    conn.close()


def test_unread_for_a_user_in_300_conversations(tenant, db):
    """300 conversations made through the actions themselves (in SQL, for
    speed): bob posts i % 4 messages in the i-th, mentions alice in every
    5th, alice reads every 7th and answers in every 11th."""
    n = 300
    with db.cursor() as cur:
        cur.execute(cur.mogrify("""
DO $$
DECLARE
    t text := %s;
    cid bigint;
    x record;
BEGIN
    FOR i IN 1..%s LOOP
        SELECT (body::json->>'id')::bigint INTO cid
          FROM chat.api_conversation_create(t, 'bob', NULL,
                   jsonb_build_object('type', 'group', 'title', 'c' || i,
                                      'member_ids', jsonb_build_array(
                                          'alice', 'carol')))
         WHERE status IS NOT NULL;
        FOR k IN 1..(i %% 4) LOOP
            PERFORM chat.api_message_send(t, 'bob', NULL,
                jsonb_build_object('conversation_id', cid,
                                   'content', 'm' || k));
        END LOOP;
        IF i %% 5 = 0 THEN
            PERFORM chat.api_message_send(t, 'carol', NULL,
                jsonb_build_object('conversation_id', cid,
                                   'content', '@alice',
                                   'mentions', jsonb_build_array('alice')));
        END IF;
        IF i %% 7 = 0 THEN
            PERFORM chat.api_conversation_read(t, 'alice', NULL,
                jsonb_build_object('conversation_id', cid));
        END IF;
        IF i %% 11 = 0 THEN
            PERFORM chat.api_message_send(t, 'alice', NULL,
                jsonb_build_object('conversation_id', cid,
                                   'content', 'answer'));
        END IF;
    END LOOP;
END $$""", (tenant.name, n)).decode())
        cur.execute('SELECT c.title, c.id FROM chat.conversations c '
                    'WHERE c.tenant_id = %s', (tenant.name,))
        ids = dict(cur.fetchall())

    expected = {}
    for i in range(1, n + 1):
        count = i % 4 + (1 if i % 5 == 0 else 0)
        mentions = 1 if i % 5 == 0 else 0
        if i % 7 == 0 or i % 11 == 0:
            count = mentions = 0
        if count or mentions:
            expected[ids[f'c{i}']] = (count, mentions)

    alice = tenant.client('alice')
    started = time.monotonic()
    u = unread(alice)
    elapsed = time.monotonic() - started
    assert unread_map(alice) == expected
    assert u['total'] == sum(c for c, _ in expected.values())
    assert len(u['conversations']) == len(expected)
    assert elapsed < 2, f'GET unread took {elapsed:.2f}s'
    # the conversation list shows the same counts, page by page
    seen, cursor = {}, None
    while True:
        path = 'conversations?limit=100' + (
            '&cursor=' + urllib.parse.quote(cursor) if cursor else '')
        r = alice.get(path)
        assert r.status == 200, r
        for c in r.json['items']:
            seen[c['id']] = (c['me']['unread_count'],
                             c['me']['unread_mentions'])
        cursor = r.json['next_cursor']
        if cursor is None:
            break
    assert len(seen) == n
    assert {k: v for k, v in seen.items() if v != (0, 0)} == expected
    # and single conversations too
    for cid in list(expected)[:5]:
        assert counts(alice, cid) == expected[cid]
    # carol's counts: bob's messages after her own, alice's answers
    expected_carol = {}
    for i in range(1, n + 1):
        count = (0 if i % 5 == 0 else i % 4) + (1 if i % 11 == 0 else 0)
        if count:
            expected_carol[ids[f'c{i}']] = (count, 0)
    assert unread_map(tenant.client('carol')) == expected_carol


# receipts: derived from the read positions of those who were there

def receipts(client, cid, mid):
    r = client.get(f'conversations/{cid}/messages/{mid}/receipts')
    assert r.status == 200, r
    assert set(r.json) == {'read_by', 'delivered_to'}, r
    return r.json


def test_receipts_leave_out_members_added_after_the_message(tenant):
    # a newcomer starts with last_read_seq at its member_added seq: it has
    # nothing unread from before it came, but it did not read that either
    alice, bob = tenant.client('alice'), tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    m1 = sent(alice, cid, 'before dave')
    assert read_ok(bob, cid) == m1['seq']
    r = alice.post(f'conversations/{cid}/members', {'user_ids': ['dave']})
    assert r.status == 200, r
    dave = tenant.client('dave')
    assert me(dave, cid)['last_read_seq'] > m1['seq']
    only_bob = {'read_by': ['bob'], 'delivered_to': ['bob']}
    assert receipts(dave, cid, m1['id']) == only_bob
    # reading everything there is does not make dave a reader of m1
    read_ok(dave, cid)
    assert receipts(alice, cid, m1['id']) == only_bob

    # a message sent after dave came is his to read
    m2 = sent(alice, cid, 'after dave')
    assert receipts(alice, cid, m2['id']) == {'read_by': [],
                                              'delivered_to': []}
    assert read_ok(dave, cid) == m2['seq']
    assert receipts(alice, cid, m2['id']) == {'read_by': ['dave'],
                                              'delivered_to': ['dave']}
    assert read_ok(bob, cid) == m2['seq']
    assert receipts(alice, cid, m2['id']) == {
        'read_by': ['bob', 'dave'], 'delivered_to': ['bob', 'dave']}
    assert receipts(alice, cid, m1['id']) == only_bob
