"""Messages (API.md section 4 Messages, section 6): send, history, threads,
edits, deletes, pins, reactions, forward, receipts, and the seq that every
event of a conversation takes.

Each test works in a fresh tenant of the shared stack; the limits that a
directive sets (message size, edit window) are tested on nginx instances
of their own that share the stack's Postgres.
"""

import concurrent.futures
import json
import threading
import time
import urllib.parse

import psycopg2
import pytest


MESSAGE_KEYS = {
    'id', 'conversation_id', 'seq', 'sender_id', 'type', 'content',
    'attachments', 'reply_to', 'reply_count', 'forwarded_from', 'mentions',
    'reactions', 'is_edited', 'edited_at', 'is_deleted', 'is_pinned',
    'client_id', 'created_at', 'poll', 'bot',
}

ERROR_CODES = {400: 'bad_request', 403: 'forbidden', 404: 'not_found',
               409: 'conflict', 410: 'gone', 413: 'payload_too_large'}


# helpers

def expect_error(r, status, message=None):
    """r is an error answer of that status: {"error": {code, message}}."""
    assert r.status == status, r
    body = r.json
    assert set(body) == {'error'}, r
    assert body['error']['code'] == ERROR_CODES[status], r
    assert body['error']['message'], r
    if message is not None:
        assert message in body['error']['message'], r


def new_conv(client, type='group', members=(), **fields):
    return client.create(type, members, **fields)['id']


def send(client, cid, content='hello', **fields):
    body = dict(fields)
    if content is not ...:
        body['content'] = content
    return client.post(f'conversations/{cid}/messages', body)


def sent(client, cid, content='hello', **fields):
    r = send(client, cid, content, **fields)
    assert r.status == 201, r
    return r.json


def conversation(client, cid):
    r = client.get(f'conversations/{cid}')
    assert r.status == 200, r
    return r.json


def last_seq(client, cid):
    return conversation(client, cid)['last_seq']


def get_message(client, cid, mid):
    r = client.get(f'conversations/{cid}/messages/{mid}')
    assert r.status == 200, r
    return r.json


def history(client, cid, **params):
    query = urllib.parse.urlencode(params)
    r = client.get(f'conversations/{cid}/messages' + ('?' + query
                                                     if query else ''))
    assert r.status == 200, r
    assert set(r.json) == {'items', 'next_cursor'}, r
    return r.json


def add_members(client, cid, users, role=None):
    body = {'user_ids': list(users)}
    if role:
        body['role'] = role
    r = client.post(f'conversations/{cid}/members', body)
    assert r.status == 200, r


def roles_conv(tenant, type='group'):
    """alice owns a conversation with adam (admin), mo (moderator) and
    mem (member): {role: client}, the conversation id."""
    alice = tenant.client('alice')
    cid = new_conv(alice, type)
    add_members(alice, cid, ['adam'], 'admin')
    add_members(alice, cid, ['mo'], 'moderator')
    add_members(alice, cid, ['mem'])
    return {'owner': alice, 'admin': tenant.client('adam'),
            'moderator': tenant.client('mo'),
            'member': tenant.client('mem')}, cid


def quote(text):
    return urllib.parse.quote(text, safe='')


@pytest.fixture(scope='module')
def db(stack):
    conn = psycopg2.connect(stack.pg.conninfo)
    conn.autocommit = True
    yield conn
    conn.close()


def rows(db, query, *args):
    with db.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchall()


def event_at(db, cid, seq):
    """(type, message_id, payload as JSON) of the stored event at seq."""
    found = rows(db, 'SELECT type, message_id, payload FROM chat.events '
                     'WHERE conversation_id = %s AND seq = %s', cid, seq)
    assert found, f'no event at seq {seq}'
    kind, mid, payload = found[0]
    return kind, mid, json.loads(payload)


def event_seqs(db, cid):
    return [s for (s,) in rows(db, 'SELECT seq FROM chat.events WHERE '
                                   'conversation_id = %s ORDER BY seq', cid)]


def bulk_send(db, tenant, user, cid, n, prefix='bulk'):
    """n messages "<prefix> 1" .. "<prefix> n" through the send action
    itself, in one transaction: faster than n requests."""
    with db.cursor() as cur:
        body = cur.mogrify(
            'DO $$ BEGIN FOR i IN 1..%s LOOP '
            'PERFORM chat.api_message_send(%s, %s, NULL, jsonb_build_object('
            '\'conversation_id\', %s::bigint, \'content\', %s || \' \' || i));'
            ' END LOOP; END $$',
            (n, tenant.name, user, cid, prefix)).decode()
        cur.execute(body)


def takes_one_seq(db, client, cid, before, kind, mid):
    """The conversation's last_seq moved by exactly one, to an event of
    that kind about that message."""
    after = last_seq(client, cid)
    assert after == before + 1
    ev_kind, ev_mid, payload = event_at(db, cid, after)
    assert (ev_kind, ev_mid) == (kind, mid)
    assert payload['type'] == kind and payload['seq'] == after
    assert payload['conversation_id'] == cid
    return payload


@pytest.fixture(scope='module')
def nginx_max100(stack):
    ng = stack.nginx(name='msg_max100', EXTRA='chat_message_max 100;')
    yield ng
    ng.stop()


@pytest.fixture(scope='module')
def nginx_edit1s(stack):
    ng = stack.nginx(name='msg_edit1s', EXTRA='chat_edit_window 1s;')
    yield ng
    ng.stop()


@pytest.fixture
def other_tenant(tenant):
    """A second fresh tenant on the same nginx (its users may bear the same
    names as those of `tenant`)."""
    return type(tenant)(tenant.stack, tenant.nginx)


# send

def test_send_text_answers_201_with_the_message(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    r = send(alice, cid, 'hello world', client_id='c-1')
    assert r.status == 201, r
    m = r.json
    assert set(m) == MESSAGE_KEYS
    assert m['conversation_id'] == cid and m['sender_id'] == 'alice'
    assert m['type'] == 'text' and m['content'] == 'hello world'
    assert m['seq'] == 1
    assert m['attachments'] == [] and m['reactions'] == []
    assert m['mentions'] == [] and m['reply_to'] is None
    assert m['reply_count'] == 0 and m['forwarded_from'] is None
    assert m['is_edited'] is False and m['edited_at'] is None
    assert m['is_deleted'] is False and m['is_pinned'] is False
    assert m['client_id'] == 'c-1'
    assert m['created_at'].endswith('Z') and len(m['created_at']) == 24
    assert get_message(alice, cid, m['id']) == m


def test_send_updates_last_message_and_last_seq(tenant):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    sent(alice, cid, 'one')
    m = sent(bob, cid, 'two')
    c = conversation(alice, cid)
    assert c['last_seq'] == 2
    assert c['last_message']['id'] == m['id']
    assert c['last_message']['content'] == 'two'


def test_send_moves_the_conversation_to_the_top_of_the_list(tenant):
    alice = tenant.client('alice')
    first = new_conv(alice, 'group', ['bob'])
    second = new_conv(alice, 'group', ['bob'])
    sent(alice, second, 'x')
    sent(alice, first, 'y')
    ids = [c['id'] for c in alice.get('conversations').json['items']]
    assert ids.index(first) < ids.index(second)


@pytest.mark.parametrize('type_, content', [
    ('text', 'plain words'),
    ('emoji', '\U0001F600'),
    ('call', 'missed call, 0:00'),
    ('location', 'geo:48.2082,16.3738'),
    ('location', 'geo:-90,-180'),
    ('location', 'geo:90.0,180.0'),
    ('location', 'geo:37.786971,-122.399677;u=35'),
    ('location', 'geo:37.786971,-122.399677,250'),
])
def test_send_each_client_type(tenant, type_, content):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, content, type=type_)
    assert m['type'] == type_ and m['content'] == content


@pytest.mark.parametrize('content', [
    'geo:91,0', 'geo:-90.5,0', 'geo:0,181', 'geo:0,-180.01', 'geo:999,1',
    'geo:abc,def', 'geo:48.2', 'geo:', '48.2,16.3', 'location 48.2,16.3',
    'geo:48.2;16.3', 'GEO:1,2x',
])
def test_send_location_that_is_not_a_geo_uri_is_400(tenant, content):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    expect_error(send(alice, cid, content, type='location'), 400, 'content')
    assert last_seq(alice, cid) == 0


def test_send_system_message_is_400(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    expect_error(send(alice, cid, 'I am the server', type='system'), 400,
                 'system')
    assert last_seq(alice, cid) == 0


@pytest.mark.parametrize('type_', ['file', 'image', 'video', 'audio'])
def test_send_file_types_without_attachments_is_400(tenant, type_):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    expect_error(send(alice, cid, 'see this', type=type_), 400,
                 'attachments')
    expect_error(send(alice, cid, 'see this', type=type_, attachments=[]),
                 400, 'attachments')


def test_send_unknown_type_is_400(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    expect_error(send(alice, cid, 'x', type='sticker'), 400, 'type')


def test_send_attachments_naming_unknown_files_is_400(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    expect_error(send(alice, cid, 'see', type='image',
                      attachments=[9007199254740991]), 400, 'attachments')
    expect_error(send(alice, cid, 'see', attachments=[123456789]), 400,
                 'attachments')
    assert last_seq(alice, cid) == 0


def test_send_attachments_of_own_files_only(tenant, db):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    sent(bob, cid, 'hi')  # bob exists as a user with a name
    (mine,), (bobs,) = [rows(db, 'INSERT INTO chat.files (tenant_id, '
                             'uploader_id, name, size, content_type, '
                             'storage_key) VALUES (%s, %s, %s, 3, '
                             '\'image/png\', %s) RETURNING id',
                             tenant.name, user, 'p.png',
                             f'{tenant.name}/{user}')[0]
                        for user in ('alice', 'bob')]
    m = sent(alice, cid, None, type='image', attachments=[mine])
    assert [f['id'] for f in m['attachments']] == [mine]
    assert m['attachments'][0]['name'] == 'p.png'
    assert m['content'] is None
    expect_error(send(alice, cid, 'x', type='image', attachments=[bobs]),
                 400, 'attachments')


@pytest.mark.parametrize('content', ['', ' ', '   \t\r\n  ', None, ...])
def test_send_empty_or_blank_content_is_400(tenant, content):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    expect_error(send(alice, cid, content), 400, 'content')
    assert last_seq(alice, cid) == 0


@pytest.mark.parametrize('content', ['\u00a0', '\u2003\u3000', '\v\f'])
def test_send_content_of_other_whitespace_is_400(tenant, content):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    expect_error(send(alice, cid, content), 400, 'content')


def test_send_content_up_to_the_default_16k_bytes(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'a' * 16384)
    assert len(m['content']) == 16384
    # the limit counts bytes of UTF-8: 8192 two-byte characters fit
    m = sent(alice, cid, '\u00e9' * 8192)
    assert m['content'] == '\u00e9' * 8192
    assert last_seq(alice, cid) == 2


@pytest.mark.parametrize('content', [
    'a' * 16385,
    '\u00e9' * 8192 + 'a',      # 8193 characters, 16385 bytes
    '\u20ac' * 5462,            # 5462 characters, 16386 bytes
    '\U0001F600' * 4097,        # 4097 characters, 16388 bytes
])
def test_send_content_over_the_default_16k_bytes_is_413(tenant, content):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    expect_error(send(alice, cid, content), 413, 'content')
    assert last_seq(alice, cid) == 0


def test_send_content_limit_follows_chat_message_max(tenant, nginx_max100):
    alice = tenant.client('alice', nginx=nginx_max100)
    cid = new_conv(alice, 'group', ['bob'])
    assert sent(alice, cid, 'x' * 100)['content'] == 'x' * 100
    assert sent(alice, cid, '\u00e9' * 50)['content'] == '\u00e9' * 50
    expect_error(send(alice, cid, 'x' * 101), 413, 'content')
    expect_error(send(alice, cid, '\u00e9' * 50 + 'x'), 413, 'content')
    expect_error(send(alice, cid, '\u20ac' * 34), 413, 'content')
    # the shared nginx keeps its 16 KiB
    assert sent(tenant.client('alice'), cid, 'x' * 101)
    assert last_seq(alice, cid) == 3


@pytest.mark.parametrize('field, value', [
    ('content', 42),
    ('content', ['hi']),
    ('content', {'text': 'hi'}),
    ('mentions', 'bob'),
    ('mentions', [1]),
    ('mentions', ['']),
    ('reply_to', '5'),
    ('reply_to', 0),
    ('reply_to', -3),
    ('reply_to', 1.5),
    ('attachments', 'x'),
    ('attachments', ['1']),
    ('client_id', 'x' * 129),
    ('client_id', 12),
    ('type', 3),
])
def test_send_wrong_field_types_are_400(tenant, field, value):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    body = {'content': 'hello', field: value}
    r = alice.post(f'conversations/{cid}/messages', body)
    expect_error(r, 400, field)
    assert last_seq(alice, cid) == 0


def test_send_client_id_of_128_characters_is_accepted(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    for client_id in ('k' * 128, '\U0001F511' * 128):
        assert sent(alice, cid, 'x', client_id=client_id)['client_id'] \
            == client_id


def test_send_unknown_field_is_400(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    expect_error(send(alice, cid, 'x', sender_id='bob'), 400, 'sender_id')
    expect_error(send(alice, cid, 'x', seq=1), 400, 'seq')


def test_send_body_that_is_not_a_json_object_is_400(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    for raw in ('["hello"]', '"hello"', '{"content": "x"', 'content=x',
                '{"content": "x", "content": "y"}',
                '{"content": "a\\u0000b"}', b'{"content": "\xff"}',
                b'{"content": "\xed\xa0\x80"}'):
        expect_error(alice.post(f'conversations/{cid}/messages', raw=raw),
                     400)
    assert last_seq(alice, cid) == 0


def test_a_nul_in_json_is_refused_in_our_words(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    r = alice.post(f'conversations/{cid}/messages',
                   raw='{"content": "a\\u0000b"}')
    expect_error(r, 400)
    text = r.json['error']['message']
    assert 'u0000' in text and 'JSON_ALLOW_NUL' not in text


def test_send_to_a_conversation_one_is_not_in_is_404(tenant,
                                                      other_tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    expect_error(send(tenant.client('eve'), cid, 'let me in'), 404)
    # nor from another tenant with the same user name
    expect_error(send(other_tenant.client('alice'), cid, 'me too'), 404)
    expect_error(send(alice, 9007199254740991, 'nowhere'), 404)
    assert last_seq(alice, cid) == 0


# replies and mentions

def test_reply_increments_the_reply_count_of_its_root(tenant, db):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    root = sent(alice, cid, 'root')
    r1 = sent(bob, cid, 'first reply', reply_to=root['id'])
    r2 = sent(alice, cid, 'second reply', reply_to=root['id'])
    assert r1['reply_to'] == root['id'] and r2['reply_to'] == root['id']
    assert get_message(bob, cid, root['id'])['reply_count'] == 2
    assert r1['reply_count'] == 0
    # a reply is a new_message event; the root's count has no event
    assert last_seq(alice, cid) == 3
    kind, mid, payload = event_at(db, cid, 3)
    assert (kind, mid) == ('new_message', r2['id'])
    assert payload['message']['reply_to'] == root['id']


def test_reply_to_a_message_of_another_conversation_is_400(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    other = new_conv(alice, 'group', ['carol'])
    foreign = sent(alice, other, 'elsewhere')
    expect_error(send(alice, cid, 'reply', reply_to=foreign['id']), 400,
                 'reply_to')
    expect_error(send(alice, cid, 'reply', reply_to=9007199254740991), 400,
                 'reply_to')
    assert last_seq(alice, cid) == 0
    assert get_message(alice, other, foreign['id'])['reply_count'] == 0


def test_mentions_of_members_are_kept(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob', 'carol'])
    m = sent(alice, cid, '@bob @carol look', mentions=['bob', 'carol'])
    assert sorted(m['mentions']) == ['bob', 'carol']
    m = sent(alice, cid, '@bob @bob', mentions=['bob', 'bob'])
    assert m['mentions'] == ['bob']


def test_mention_of_a_non_member_is_400(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    tenant.client('zed').create('group', ['alice'])  # zed exists elsewhere
    expect_error(send(alice, cid, 'hi @zed', mentions=['bob', 'zed']), 400,
                 'mentions')
    expect_error(send(alice, cid, 'hi @nobody', mentions=['nobody']), 400,
                 'mentions')
    assert last_seq(alice, cid) == 0


# client_id

def test_client_id_repeat_returns_the_first_message_with_200(tenant, db):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    first = sent(alice, cid, 'original', client_id='abc')
    r = send(alice, cid, 'a different text', client_id='abc',
             mentions=['bob'])
    assert r.status == 200, r
    assert r.json == first
    assert last_seq(alice, cid) == 1
    assert rows(db, 'SELECT count(*) FROM chat.messages WHERE '
                    'conversation_id = %s', cid) == [(1,)]


def test_client_id_is_per_sender_and_conversation(tenant):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    other = new_conv(alice, 'group', ['bob'])
    a = sent(alice, cid, 'a', client_id='same')
    b = sent(bob, cid, 'b', client_id='same')
    c = sent(alice, other, 'c', client_id='same')
    assert len({a['id'], b['id'], c['id']}) == 3
    assert last_seq(alice, cid) == 2


def test_concurrent_retries_of_one_client_id_make_one_message(tenant, db):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    barrier = threading.Barrier(20)

    def attempt(i):
        barrier.wait()
        return send(alice, cid, f'attempt {i}', client_id='retry-me')

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(attempt, range(20)))

    assert sorted(r.status for r in answers) == [200] * 19 + [201], answers
    assert len({r.json['id'] for r in answers}) == 1
    assert len({json.dumps(r.json, sort_keys=True) for r in answers}) == 1
    assert last_seq(alice, cid) == 1
    assert rows(db, 'SELECT count(*) FROM chat.messages WHERE '
                    'conversation_id = %s', cid) == [(1,)]
    assert event_seqs(db, cid) == [1]


# seq

def test_each_event_takes_the_next_seq(tenant, db):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    assert last_seq(alice, cid) == 0
    m1 = sent(alice, cid, 'one')
    add_members(alice, cid, ['carol'])
    m2 = sent(bob, cid, 'two')
    alice.post(f'conversations/{cid}/messages/{m2["id"]}/reactions',
               {'emoji': '\U0001F44D'})
    m3 = sent(bob, cid, 'three')
    assert [m1['seq'], m2['seq'], m3['seq']] == [1, 3, 5]
    assert event_seqs(db, cid) == [1, 2, 3, 4, 5]
    kinds = [event_at(db, cid, s)[0] for s in range(1, 6)]
    assert kinds == ['new_message', 'member_added', 'new_message',
                     'reaction_added', 'new_message']
    assert last_seq(alice, cid) == 5


def test_seq_is_gapless_under_concurrent_senders(tenant, db):
    """10 senders x 50 messages from 5 users, while a sixth user adds and
    removes reactions: every seq 1..N is taken exactly once."""
    users = [f'user{i}' for i in range(5)]
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', users + ['rex'])
    root = sent(alice, cid, 'react to me')
    clients = [tenant.client(u) for u in users]
    rex = tenant.client('rex')
    barrier = threading.Barrier(11)

    def sender(i):
        c = clients[i % 5]
        barrier.wait()
        out = []
        for n in range(50):
            r = send(c, cid, f'sender {i} message {n}')
            assert r.status == 201, r
            out.append(r.json['seq'])
        return out

    def reactor():
        barrier.wait()
        path = f'conversations/{cid}/messages/{root["id"]}/reactions'
        for n in range(20):
            r = rex.post(path, {'emoji': f'e{n}'})
            assert r.status == 200, r
            if n % 2:
                r = rex.delete(f'{path}/e{n}')
                assert r.status == 200, r

    with concurrent.futures.ThreadPoolExecutor(11) as pool:
        futures = [pool.submit(sender, i) for i in range(10)]
        react = pool.submit(reactor)
        seqs = [s for f in futures for s in f.result()]
        react.result()

    total = 1 + 500 + 20 + 10
    assert len(seqs) == 500 and len(set(seqs)) == 500
    assert event_seqs(db, cid) == list(range(1, total + 1))
    assert last_seq(alice, cid) == total
    messages = rows(db, 'SELECT m.seq, e.type FROM chat.messages m '
                        'JOIN chat.events e ON e.conversation_id = '
                        'm.conversation_id AND e.seq = m.seq AND '
                        'e.message_id = m.id WHERE m.conversation_id = %s '
                        'ORDER BY m.seq', cid)
    assert len(messages) == 501
    assert {t for _, t in messages} == {'new_message'}
    assert sorted(seqs) == [s for s, _ in messages][1:]
    # each sender's own messages took increasing seqs
    # (its requests were sequential)
    for f in futures:
        assert f.result() == sorted(f.result())


# who may post

@pytest.mark.parametrize('role, status', [
    ('owner', 201), ('admin', 201), ('moderator', 403), ('member', 403)])
def test_channel_posting_is_for_owner_and_admin(tenant, role, status):
    clients, cid = roles_conv(tenant, 'channel')
    before = last_seq(clients['owner'], cid)
    r = send(clients[role], cid, f'from the {role}')
    if status == 201:
        assert r.status == 201, r
        assert last_seq(clients['owner'], cid) == before + 1
    else:
        expect_error(r, 403)
        assert last_seq(clients['owner'], cid) == before


@pytest.mark.parametrize('role', ['owner', 'admin', 'moderator', 'member'])
def test_group_posting_is_for_every_role(tenant, role):
    clients, cid = roles_conv(tenant, 'group')
    before = last_seq(clients['owner'], cid)
    m = sent(clients[role], cid, 'hi')
    assert m['seq'] == before + 1


def test_direct_posting_is_for_both_members(tenant):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'direct', ['bob'])
    sent(alice, cid, 'hi bob')
    sent(bob, cid, 'hi alice')
    expect_error(send(tenant.client('carol'), cid, 'hi both'), 404)


def test_channel_members_read_but_cannot_post(tenant):
    clients, cid = roles_conv(tenant, 'channel')
    m = sent(clients['owner'], cid, 'announcement')
    assert get_message(clients['member'], cid, m['id'])['content'] \
        == 'announcement'
    items = history(clients['member'], cid)['items']
    assert [i['id'] for i in items] == [m['id']]


def test_posting_to_a_conversation_archived_by_its_owner_is_403(tenant):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(bob, cid, 'before the archive')
    assert alice.delete(f'conversations/{cid}').status == 204
    seq = last_seq(alice, cid)
    expect_error(send(bob, cid, 'after'), 403)
    expect_error(send(alice, cid, 'after'), 403)
    # still readable
    assert get_message(bob, cid, m['id'])['content'] == 'before the archive'
    assert last_seq(alice, cid) == seq


# single message

def test_get_message_of_another_conversation_is_404(tenant,
                                                     other_tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    other = new_conv(alice, 'group', ['carol'])
    m = sent(alice, other, 'over there')
    expect_error(alice.get(f'conversations/{cid}/messages/{m["id"]}'), 404)
    expect_error(alice.get(f'conversations/{cid}/messages/9007199254740991'),
                 404)
    # bob is not in the other conversation
    expect_error(tenant.client('bob').get(
        f'conversations/{other}/messages/{m["id"]}'), 404)
    expect_error(other_tenant.client('alice').get(
        f'conversations/{other}/messages/{m["id"]}'), 404)
    expect_error(alice.get(f'conversations/{cid}/messages/abc'), 400)


# history

@pytest.fixture
def numbered(tenant, db):
    """alice and bob's conversation: messages "m1" .. "m12", with a reaction
    after m4 and a member added after m8, so message seqs have holes."""
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    msgs = []
    for i in range(1, 13):
        msgs.append(sent(alice if i % 2 else bob, cid, f'm{i}'))
        if i == 4:
            r = bob.post(f'conversations/{cid}/messages/{msgs[0]["id"]}/'
                         'reactions', {'emoji': 'ok'})
            assert r.status == 200, r
        if i == 8:
            add_members(alice, cid, ['carol'])
    assert last_seq(alice, cid) == 14
    return alice, cid, msgs


def contents(page):
    return [m['content'] for m in page['items']]


def test_history_without_params_is_the_newest_page_newest_first(numbered):
    alice, cid, msgs = numbered
    page = history(alice, cid)
    assert contents(page) == [f'm{i}' for i in range(12, 0, -1)]
    assert page['next_cursor'] is None
    assert page['items'][0] == get_message(alice, cid, msgs[-1]['id'])
    page = history(alice, cid, limit=5)
    assert contents(page) == ['m12', 'm11', 'm10', 'm9', 'm8']
    assert page['next_cursor'] is not None


def test_history_before_is_newest_first_below_that_seq(numbered):
    alice, cid, msgs = numbered
    seq = {m['content']: m['seq'] for m in msgs}
    page = history(alice, cid, before=seq['m6'])
    assert contents(page) == ['m5', 'm4', 'm3', 'm2', 'm1']
    assert page['next_cursor'] is None
    # a seq that is not a message's
    page = history(alice, cid, before=seq['m5'] - 1, limit=2)
    assert contents(page) == ['m4', 'm3']
    assert history(alice, cid, before=1)['items'] == []


def test_history_after_is_oldest_first_above_that_seq(numbered):
    alice, cid, msgs = numbered
    seq = {m['content']: m['seq'] for m in msgs}
    page = history(alice, cid, after=seq['m7'])
    assert contents(page) == ['m8', 'm9', 'm10', 'm11', 'm12']
    assert page['next_cursor'] is None
    page = history(alice, cid, after=0, limit=3)
    assert contents(page) == ['m1', 'm2', 'm3']
    assert history(alice, cid, after=seq['m12'])['items'] == []


def test_history_before_and_after_combined_bound_the_range(numbered):
    alice, cid, msgs = numbered
    seq = {m['content']: m['seq'] for m in msgs}
    page = history(alice, cid, after=seq['m3'], before=seq['m9'])
    assert contents(page) == ['m4', 'm5', 'm6', 'm7', 'm8']
    assert page['next_cursor'] is None
    assert history(alice, cid, after=seq['m3'],
                   before=seq['m4'])['items'] == []
    # paging within the range, the bounds given again with the cursor
    got, cursor = [], None
    while True:
        params = dict(after=seq['m3'], before=seq['m9'], limit=2)
        if cursor:
            params['cursor'] = cursor
        page = history(alice, cid, **params)
        got += contents(page)
        cursor = page['next_cursor']
        if cursor is None:
            break
    assert got == ['m4', 'm5', 'm6', 'm7', 'm8']


def test_history_next_cursor_continues_without_gap_or_duplicate(numbered):
    alice, cid, msgs = numbered
    for direction in ('before', 'after'):
        got = []
        page = history(alice, cid, limit=5, **({'after': 0}
                                                if direction == 'after'
                                                else {}))
        pages = 1
        while True:
            got += contents(page)
            if page['next_cursor'] is None:
                break
            assert page['next_cursor'][0] == direction[0]
            page = history(alice, cid, limit=5, cursor=page['next_cursor'])
            pages += 1
        expected = [f'm{i}' for i in range(1, 13)]
        assert got == (expected if direction == 'after'
                       else expected[::-1])
        assert pages == 3


def test_history_limit_over_100_is_clamped(tenant, db):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    bulk_send(db, tenant, 'alice', cid, 130)
    page = history(alice, cid, limit=1000)
    assert len(page['items']) == 100
    assert page['items'][0]['content'] == 'bulk 130'
    assert page['next_cursor'] is not None
    page = history(alice, cid, cursor=page['next_cursor'], limit=100)
    assert len(page['items']) == 30 and page['next_cursor'] is None
    assert len(history(alice, cid)['items']) == 50  # the default


@pytest.mark.parametrize('query', [
    'limit=0', 'limit=-1', 'limit=abc', 'before=-1', 'before=x',
    'after=1.5', 'thread=0', 'thread=abc', 'cursor=zzz', 'cursor=b',
    'cursor=c12', 'cursor=b-1',
])
def test_history_bad_params_are_400(tenant, query):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    sent(alice, cid, 'x')
    expect_error(alice.get(f'conversations/{cid}/messages?{query}'), 400)


def test_history_of_a_conversation_one_is_not_in_is_404(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    sent(alice, cid, 'private')
    expect_error(tenant.client('eve').get(f'conversations/{cid}/messages'),
                 404)


def test_history_thread_lists_only_the_replies_of_its_root(tenant):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    root = sent(alice, cid, 'root')
    other = sent(alice, cid, 'other root')
    replies = []
    for i in range(5):
        replies.append(sent(bob if i % 2 else alice, cid, f'reply {i}',
                            reply_to=root['id']))
        sent(alice, cid, f'noise {i}')
        sent(bob, cid, f'other reply {i}', reply_to=other['id'])
    page = history(alice, cid, thread=root['id'])
    assert contents(page) == [f'reply {i}' for i in range(4, -1, -1)]
    page = history(alice, cid, thread=root['id'], after=0)
    assert contents(page) == [f'reply {i}' for i in range(5)]
    page = history(alice, cid, thread=root['id'], after=replies[1]['seq'],
                   before=replies[4]['seq'])
    assert contents(page) == ['reply 2', 'reply 3']
    # the thread pages with its cursor (the thread named again)
    page = history(alice, cid, thread=root['id'], limit=2)
    got = contents(page)
    while page['next_cursor']:
        page = history(alice, cid, thread=root['id'], limit=2,
                       cursor=page['next_cursor'])
        got += contents(page)
    assert got == [f'reply {i}' for i in range(4, -1, -1)]
    # the main history includes the replies
    assert len(history(alice, cid)['items']) == 17
    assert get_message(alice, cid, root['id'])['reply_count'] == 5


def test_history_thread_of_an_unknown_root_is_404(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    other = new_conv(alice, 'group', ['bob'])
    foreign = sent(alice, other, 'elsewhere')
    sent(alice, cid, 'here')
    expect_error(alice.get(f'conversations/{cid}/messages?thread='
                           f'{foreign["id"]}'), 404)
    expect_error(alice.get(f'conversations/{cid}/messages?thread='
                           '9007199254740991'), 404)


def test_history_thread_of_a_message_without_replies_is_empty(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'lonely')
    assert history(alice, cid, thread=m['id']) == {'items': [],
                                                    'next_cursor': None}


def page_while_posting(tenant, db, direction):
    """Pages the history 7 at a time while bob posts; returns the seqs
    seen in order, those of the messages before paging started, and
    those bob posted."""
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    bulk_send(db, tenant, 'alice', cid, 150)
    existing = [s for (s,) in rows(db, 'SELECT seq FROM chat.messages '
                                       'WHERE conversation_id = %s', cid)]
    stop = threading.Event()
    started = threading.Event()
    posted = []

    def writer():
        n = 0
        while not stop.is_set() and n < 400:
            r = send(bob, cid, f'live {n}')
            assert r.status == 201, r
            posted.append(r.json['seq'])
            n += 1
            started.set()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        w = pool.submit(writer)
        started.wait(10)
        seen = []
        params = {'limit': 7}
        if direction == 'after':
            params['after'] = 0
        page = history(alice, cid, **params)
        while True:
            seen += [m['seq'] for m in page['items']]
            if page['next_cursor'] is None or (direction == 'after'
                                               and len(seen) > 240):
                break
            page = history(alice, cid, limit=7, cursor=page['next_cursor'])
        stop.set()
        w.result()
    return seen, existing, posted


def test_paging_back_while_others_post_has_no_gap_or_duplicate(tenant, db):
    seen, existing, posted = page_while_posting(tenant, db, 'before')
    assert posted, 'the writer posted nothing'
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen, reverse=True)
    assert set(existing) <= set(seen)
    # below the newest seq of the first page, every message was seen
    assert set(seen) == set(existing) | {s for s in posted if s <= seen[0]}


def test_paging_forward_while_others_post_has_no_gap_or_duplicate(tenant,
                                                                  db):
    seen, existing, posted = page_while_posting(tenant, db, 'after')
    assert posted, 'the writer posted nothing'
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen)
    assert set(existing) <= set(seen)
    assert set(seen) == set(existing) | {s for s in posted if s <= seen[-1]}


def test_tombstones_keep_their_place_in_history(tenant, db):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    (fid,), = rows(db, 'INSERT INTO chat.files (tenant_id, uploader_id, '
                       'name, size, content_type, storage_key) VALUES '
                       '(%s, \'alice\', \'a.txt\', 1, \'text/plain\', %s) '
                       'RETURNING id', tenant.name, tenant.name + '/tomb')
    m1 = sent(alice, cid, 'one')
    m2 = sent(alice, cid, 'secret two', type='file', attachments=[fid])
    m3 = sent(bob, cid, 'three')
    assert m2['attachments'][0]['id'] == fid
    assert alice.delete(f'conversations/{cid}/messages/{m2["id"]}').status \
        == 204
    items = history(bob, cid)['items']
    assert [m['id'] for m in items] == [m3['id'], m2['id'], m1['id']]
    tomb = items[1]
    assert tomb['is_deleted'] is True and tomb['content'] is None
    assert tomb['attachments'] == []
    assert tomb['seq'] == m2['seq'] and tomb['sender_id'] == 'alice'
    assert tomb == get_message(bob, cid, m2['id'])
    assert items[0]['content'] == 'three' and items[2]['content'] == 'one'


# edit

def test_edit_by_the_sender_sets_is_edited_and_takes_a_seq(tenant, db):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'typo')
    seq = last_seq(alice, cid)
    r = alice.patch(f'conversations/{cid}/messages/{m["id"]}',
                    {'content': 'fixed'})
    assert r.status == 200, r
    e = r.json
    assert set(e) == MESSAGE_KEYS
    assert e['content'] == 'fixed' and e['is_edited'] is True
    assert e['edited_at'].endswith('Z') and e['edited_at'] >= e['created_at']
    assert e['seq'] == m['seq'] and e['id'] == m['id']
    assert e['created_at'] == m['created_at']
    payload = takes_one_seq(db, alice, cid, seq, 'message_updated', m['id'])
    assert payload['message']['content'] == 'fixed'
    assert get_message(bob, cid, m['id']) == e


@pytest.mark.parametrize('role', ['owner', 'admin', 'moderator', 'member'])
def test_edit_by_anyone_but_the_sender_is_403(tenant, role):
    clients, cid = roles_conv(tenant)
    author = tenant.client('auth')
    add_members(clients['owner'], cid, ['auth'])
    m = sent(author, cid, 'mine')
    seq = last_seq(author, cid)
    expect_error(clients[role].patch(f'conversations/{cid}/messages/'
                                     f'{m["id"]}', {'content': 'theirs'}),
                 403)
    assert get_message(author, cid, m['id'])['content'] == 'mine'
    assert last_seq(author, cid) == seq


def test_edit_bad_input(tenant, nginx_max100):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'text')
    loc = sent(alice, cid, 'geo:1,2', type='location')
    path = f'conversations/{cid}/messages/{m["id"]}'
    expect_error(alice.patch(path, {}), 400, 'content')
    expect_error(alice.patch(path, {'content': ''}), 400, 'content')
    expect_error(alice.patch(path, {'content': ' \n'}), 400, 'content')
    expect_error(alice.patch(path, {'content': None}), 400, 'content')
    expect_error(alice.patch(path, {'content': 5}), 400, 'content')
    expect_error(alice.patch(path, {'content': 'x', 'type': 'emoji'}), 400,
                 'type')
    expect_error(alice.patch(path, {'content': 'x' * 16385}), 413)
    near = tenant.client('alice', nginx=nginx_max100)
    expect_error(near.patch(path, {'content': 'x' * 101}), 413)
    # a location stays a geo: URI
    expect_error(alice.patch(f'conversations/{cid}/messages/{loc["id"]}',
                             {'content': 'somewhere'}), 400, 'content')
    expect_error(alice.patch(f'conversations/{cid}/messages/'
                             '9007199254740991', {'content': 'x'}), 404)
    assert last_seq(alice, cid) == 2
    assert get_message(alice, cid, m['id'])['is_edited'] is False


def test_edit_of_a_deleted_message_is_410(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'gone soon')
    assert alice.delete(f'conversations/{cid}/messages/{m["id"]}').status \
        == 204
    seq = last_seq(alice, cid)
    expect_error(alice.patch(f'conversations/{cid}/messages/{m["id"]}',
                             {'content': 'back'}), 410)
    assert last_seq(alice, cid) == seq


def test_edit_after_the_default_10_minute_window_is_403(tenant, db):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    old = sent(alice, cid, 'old')
    recent = sent(alice, cid, 'recent')
    rows(db, 'UPDATE chat.messages SET created_at = now() - %s::interval '
             'WHERE id = %s RETURNING id', '10 minutes 5 seconds', old['id'])
    rows(db, 'UPDATE chat.messages SET created_at = now() - %s::interval '
             'WHERE id = %s RETURNING id', '9 minutes 30 seconds',
         recent['id'])
    expect_error(alice.patch(f'conversations/{cid}/messages/{old["id"]}',
                             {'content': 'late'}), 403)
    r = alice.patch(f'conversations/{cid}/messages/{recent["id"]}',
                    {'content': 'in time'})
    assert r.status == 200, r


def test_edit_window_follows_chat_edit_window(tenant, nginx_edit1s):
    alice = tenant.client('alice', nginx=nginx_edit1s)
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'quick')
    path = f'conversations/{cid}/messages/{m["id"]}'
    r = alice.patch(path, {'content': 'quick edit'})
    assert r.status == 200, r
    time.sleep(1.3)
    seq = last_seq(alice, cid)
    expect_error(alice.patch(path, {'content': 'too late'}), 403)
    assert get_message(alice, cid, m['id'])['content'] == 'quick edit'
    assert last_seq(alice, cid) == seq
    # the shared nginx keeps its 10 minutes
    r = tenant.client('alice').patch(path, {'content': 'main nginx'})
    assert r.status == 200, r


def test_edit_in_an_archived_conversation_is_403(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'frozen')
    assert alice.delete(f'conversations/{cid}').status == 204
    expect_error(alice.patch(f'conversations/{cid}/messages/{m["id"]}',
                             {'content': 'thawed'}), 403)


# delete

def test_delete_by_the_sender_is_204_and_takes_a_seq(tenant, db):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(bob, cid, 'oops')
    seq = last_seq(alice, cid)
    r = bob.delete(f'conversations/{cid}/messages/{m["id"]}')
    assert r.status == 204, r
    assert r.body == ''
    payload = takes_one_seq(db, alice, cid, seq, 'message_deleted', m['id'])
    assert payload['message_id'] == m['id']
    d = get_message(alice, cid, m['id'])
    assert d['is_deleted'] is True and d['content'] is None
    # a second delete changes nothing and takes no seq
    r = bob.delete(f'conversations/{cid}/messages/{m["id"]}')
    assert r.status == 204, r
    assert last_seq(alice, cid) == seq + 1


@pytest.mark.parametrize('role, status', [
    ('owner', 204), ('admin', 204), ('moderator', 204), ('member', 403)])
def test_delete_of_anothers_message_needs_moderator(tenant, role, status):
    clients, cid = roles_conv(tenant)
    author = tenant.client('auth')
    add_members(clients['owner'], cid, ['auth'])
    m = sent(author, cid, 'delete me?')
    seq = last_seq(author, cid)
    r = clients[role].delete(f'conversations/{cid}/messages/{m["id"]}')
    if status == 204:
        assert r.status == 204, r
        assert get_message(author, cid, m['id'])['is_deleted'] is True
        assert last_seq(author, cid) == seq + 1
    else:
        expect_error(r, 403)
        assert get_message(author, cid, m['id'])['content'] == 'delete me?'
        assert last_seq(author, cid) == seq


def test_delete_in_a_direct_conversation_is_for_the_sender(tenant):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'direct', ['bob'])
    m = sent(alice, cid, 'mine')
    expect_error(bob.delete(f'conversations/{cid}/messages/{m["id"]}'), 403)
    assert alice.delete(f'conversations/{cid}/messages/{m["id"]}').status \
        == 204


def test_delete_removes_the_content_from_stored_events(tenant, db):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'first secret words')
    r = alice.patch(f'conversations/{cid}/messages/{m["id"]}',
                    {'content': 'second secret words'})
    assert r.status == 200, r
    stored = rows(db, 'SELECT payload FROM chat.events WHERE message_id = '
                      '%s ORDER BY seq', m['id'])
    assert 'first secret' in stored[0][0]
    assert 'second secret' in stored[1][0]
    assert alice.delete(f'conversations/{cid}/messages/{m["id"]}').status \
        == 204
    stored = rows(db, 'SELECT seq, type, payload FROM chat.events WHERE '
                      'message_id = %s ORDER BY seq', m['id'])
    assert [t for _, t, _ in stored] == ['new_message', 'message_updated',
                                         'message_deleted']
    for seq, kind, payload in stored:
        assert 'secret' not in payload
        event = json.loads(payload)
        assert event['type'] == kind and event['seq'] == seq
        assert event['conversation_id'] == cid
        if kind != 'message_deleted':
            assert event['message']['is_deleted'] is True
            assert event['message']['content'] is None
            assert event['message']['id'] == m['id']


def test_delete_removes_the_content_from_every_stored_event(tenant, db):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'classified words')
    r = alice.patch(f'conversations/{cid}', {'title': 'renamed'})
    assert r.status == 200, r
    assert alice.delete(f'conversations/{cid}/messages/{m["id"]}').status \
        == 204
    stored = rows(db, 'SELECT seq, type FROM chat.events WHERE '
                      'conversation_id = %s AND payload LIKE %s ORDER BY seq',
                  cid, '%classified%')
    assert stored == []


def test_delete_of_an_unknown_message_is_404(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    other = new_conv(alice, 'group', ['bob'])
    m = sent(alice, other, 'over there')
    expect_error(alice.delete(f'conversations/{cid}/messages/{m["id"]}'),
                 404)
    expect_error(tenant.client('eve').delete(
        f'conversations/{other}/messages/{m["id"]}'), 404)
    assert get_message(alice, other, m['id'])['is_deleted'] is False


def test_delete_in_an_archived_conversation_is_403(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'frozen')
    assert alice.delete(f'conversations/{cid}').status == 204
    seq = last_seq(alice, cid)
    r = alice.delete(f'conversations/{cid}/messages/{m["id"]}')
    assert last_seq(alice, cid) == seq
    expect_error(r, 403)


# pins

@pytest.mark.parametrize('role, status', [
    ('owner', 200), ('admin', 200), ('moderator', 200), ('member', 403)])
def test_pin_in_a_group_needs_moderator(tenant, db, role, status):
    clients, cid = roles_conv(tenant)
    m = sent(clients['member'], cid, 'pin me')
    seq = last_seq(clients['owner'], cid)
    r = clients[role].post(f'conversations/{cid}/messages/{m["id"]}/pin')
    if status == 200:
        assert r.status == 200, r
        assert set(r.json) == MESSAGE_KEYS
        assert r.json['is_pinned'] is True and r.json['id'] == m['id']
        takes_one_seq(db, clients['owner'], cid, seq, 'message_pinned',
                      m['id'])
    else:
        expect_error(r, 403)
        assert last_seq(clients['owner'], cid) == seq
        assert get_message(clients['owner'], cid, m['id'])['is_pinned'] \
            is False


@pytest.mark.parametrize('role, status', [
    ('owner', 200), ('admin', 200), ('moderator', 200), ('member', 403)])
def test_unpin_in_a_group_needs_moderator(tenant, db, role, status):
    clients, cid = roles_conv(tenant)
    m = sent(clients['member'], cid, 'pinned')
    r = clients['owner'].post(f'conversations/{cid}/messages/{m["id"]}/pin')
    assert r.status == 200, r
    seq = last_seq(clients['owner'], cid)
    r = clients[role].delete(f'conversations/{cid}/messages/{m["id"]}/pin')
    if status == 200:
        assert r.status == 200, r
        assert r.json['is_pinned'] is False
        takes_one_seq(db, clients['owner'], cid, seq, 'message_unpinned',
                      m['id'])
    else:
        expect_error(r, 403)
        assert last_seq(clients['owner'], cid) == seq


def test_pin_in_a_direct_conversation_is_for_both_members(tenant):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'direct', ['bob'])
    m = sent(alice, cid, 'remember')
    r = bob.post(f'conversations/{cid}/messages/{m["id"]}/pin')
    assert r.status == 200 and r.json['is_pinned'] is True, r
    r = alice.delete(f'conversations/{cid}/messages/{m["id"]}/pin')
    assert r.status == 200 and r.json['is_pinned'] is False, r
    r = alice.post(f'conversations/{cid}/messages/{m["id"]}/pin')
    assert r.status == 200 and r.json['is_pinned'] is True, r
    assert last_seq(alice, cid) == 4


def test_pin_twice_takes_no_second_seq(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'x')
    path = f'conversations/{cid}/messages/{m["id"]}/pin'
    assert alice.post(path).status == 200
    seq = last_seq(alice, cid)
    r = alice.post(path)
    assert r.status == 200 and r.json['is_pinned'] is True, r
    assert last_seq(alice, cid) == seq
    assert alice.delete(path).status == 200
    r = alice.delete(path)
    assert r.status == 200 and r.json['is_pinned'] is False, r
    assert last_seq(alice, cid) == seq + 1


def test_pin_in_an_archived_conversation_is_403(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'x')
    assert alice.delete(f'conversations/{cid}').status == 204
    expect_error(alice.post(f'conversations/{cid}/messages/{m["id"]}/pin'),
                 403)


def test_pins_list_newest_first_with_paging(tenant):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    msgs = [sent(bob, cid, f'p{i}') for i in range(5)]
    for i in (0, 2, 3, 4):
        assert alice.post(f'conversations/{cid}/messages/{msgs[i]["id"]}/'
                          'pin').status == 200
    assert alice.delete(f'conversations/{cid}/messages/{msgs[3]["id"]}/'
                        'pin').status == 200
    r = bob.get(f'conversations/{cid}/pins')
    assert r.status == 200, r
    assert [m['content'] for m in r.json['items']] == ['p4', 'p2', 'p0']
    assert r.json['next_cursor'] is None
    assert all(m['is_pinned'] for m in r.json['items'])
    r = bob.get(f'conversations/{cid}/pins?limit=2')
    assert [m['content'] for m in r.json['items']] == ['p4', 'p2']
    r = bob.get(f'conversations/{cid}/pins?limit=2&cursor='
                f'{r.json["next_cursor"]}')
    assert [m['content'] for m in r.json['items']] == ['p0']
    assert r.json['next_cursor'] is None
    # deleting a pinned message takes it off the list
    assert alice.delete(f'conversations/{cid}/messages/{msgs[4]["id"]}') \
        .status == 204
    r = bob.get(f'conversations/{cid}/pins')
    assert [m['content'] for m in r.json['items']] == ['p2', 'p0']
    expect_error(tenant.client('eve').get(f'conversations/{cid}/pins'), 404)
    expect_error(bob.get(f'conversations/{cid}/pins?cursor=x'), 400)


def test_pin_of_a_deleted_message_is_410(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'x')
    assert alice.delete(f'conversations/{cid}/messages/{m["id"]}').status \
        == 204
    seq = last_seq(alice, cid)
    expect_error(alice.post(f'conversations/{cid}/messages/{m["id"]}/pin'),
                 410)
    assert last_seq(alice, cid) == seq


def test_pin_of_another_conversations_message_is_404(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    other = new_conv(alice, 'group', ['bob'])
    m = sent(alice, other, 'x')
    expect_error(alice.post(f'conversations/{cid}/messages/{m["id"]}/pin'),
                 404)


# reactions

def react(client, cid, mid, emoji):
    return client.post(f'conversations/{cid}/messages/{mid}/reactions',
                       {'emoji': emoji})


def unreact(client, cid, mid, emoji):
    return client.delete(f'conversations/{cid}/messages/{mid}/reactions/'
                         f'{quote(emoji)}')


def test_reaction_add_answers_the_message_and_takes_a_seq(tenant, db):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'nice')
    seq = last_seq(alice, cid)
    r = react(bob, cid, m['id'], '\U0001F44D')
    assert r.status == 200, r
    assert set(r.json) == MESSAGE_KEYS and r.json['id'] == m['id']
    assert r.json['reactions'] == [{'emoji': '\U0001F44D', 'count': 1,
                                    'me': True}]
    payload = takes_one_seq(db, alice, cid, seq, 'reaction_added', m['id'])
    assert payload['message_id'] == m['id']
    assert payload['user_id'] == 'bob'
    assert payload['emoji'] == '\U0001F44D'
    # the same reaction again changes nothing
    r = react(bob, cid, m['id'], '\U0001F44D')
    assert r.status == 200, r
    assert r.json['reactions'] == [{'emoji': '\U0001F44D', 'count': 1,
                                    'me': True}]
    assert last_seq(alice, cid) == seq + 1


def test_reaction_counts_and_me_per_viewer(tenant):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    carol = tenant.client('carol')
    cid = new_conv(alice, 'group', ['bob', 'carol'])
    m = sent(alice, cid, 'vote')
    react(bob, cid, m['id'], '+1')
    r = react(carol, cid, m['id'], '+1')
    assert r.json['reactions'] == [{'emoji': '+1', 'count': 2, 'me': True}]
    react(carol, cid, m['id'], '\u2764\ufe0f')
    assert get_message(alice, cid, m['id'])['reactions'] == [
        {'emoji': '+1', 'count': 2, 'me': False},
        {'emoji': '\u2764\ufe0f', 'count': 1, 'me': False}]
    assert get_message(bob, cid, m['id'])['reactions'] == [
        {'emoji': '+1', 'count': 2, 'me': True},
        {'emoji': '\u2764\ufe0f', 'count': 1, 'me': False}]
    assert get_message(carol, cid, m['id'])['reactions'] == [
        {'emoji': '+1', 'count': 2, 'me': True},
        {'emoji': '\u2764\ufe0f', 'count': 1, 'me': True}]
    # history shows them as the viewer sees them
    assert history(bob, cid)['items'][0]['reactions'][0]['me'] is True


def test_reaction_remove_by_percent_encoded_emoji(tenant, db):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'hm')
    emoji = '\U0001F44D\U0001F3FD'  # thumbs up, medium skin tone
    react(alice, cid, m['id'], emoji)
    react(bob, cid, m['id'], emoji)
    seq = last_seq(alice, cid)
    r = unreact(bob, cid, m['id'], emoji)
    assert r.status == 200, r
    assert r.json['reactions'] == [{'emoji': emoji, 'count': 1, 'me': False}]
    payload = takes_one_seq(db, alice, cid, seq, 'reaction_removed', m['id'])
    assert (payload['user_id'], payload['emoji']) == ('bob', emoji)
    # removing a reaction one does not have: 200, no seq
    r = unreact(bob, cid, m['id'], emoji)
    assert r.status == 200, r
    assert last_seq(alice, cid) == seq + 1
    r = unreact(alice, cid, m['id'], emoji)
    assert r.status == 200 and r.json['reactions'] == [], r


def test_reaction_to_a_deleted_message_is_410(tenant):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'x')
    react(bob, cid, m['id'], 'ok')
    assert alice.delete(f'conversations/{cid}/messages/{m["id"]}').status \
        == 204
    seq = last_seq(alice, cid)
    expect_error(react(bob, cid, m['id'], 'ok2'), 410)
    expect_error(unreact(bob, cid, m['id'], 'ok'), 410)
    assert last_seq(alice, cid) == seq


@pytest.mark.parametrize('emoji', ['x' * 65, '\U0001F600' * 65, 'a b',
                                   ' ', '', 'tab\there', 'new\nline'])
def test_reaction_emoji_too_long_or_with_spaces_is_400(tenant, emoji):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'x')
    expect_error(react(alice, cid, m['id'], emoji), 400, 'emoji')
    if emoji:
        expect_error(unreact(alice, cid, m['id'], emoji), 400)
    assert last_seq(alice, cid) == 1


def test_reaction_emoji_of_64_characters_is_accepted(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'x')
    for emoji in ('x' * 64, '\U0001F600' * 64):
        r = react(alice, cid, m['id'], emoji)
        assert r.status == 200, r
        r = unreact(alice, cid, m['id'], emoji)
        assert r.status == 200, r
    assert get_message(alice, cid, m['id'])['reactions'] == []


# emoji whose path would not reach the route ("/" splits it, "." and ".."
# are dot segments) are refused on adding; those with dots among other
# characters are added, and removed by their path
@pytest.mark.parametrize('emoji, can_add', [
    ('a/b', False), ('.', False), ('..', False), ('...', False),
    ('a.b', True), ('.x', True), ('x..', True),
])
def test_every_reaction_that_can_be_added_can_be_removed(tenant, emoji,
                                                         can_add):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'x')
    added = react(alice, cid, m['id'], emoji)
    if can_add:
        assert added.status == 200, added
        assert added.json['reactions'] == [{'emoji': emoji, 'count': 1,
                                            'me': True}]
        removed = unreact(alice, cid, m['id'], emoji)
        assert removed.status == 200, removed
        assert removed.json['reactions'] == []
        assert last_seq(alice, cid) == 3        # added, then removed
    else:
        expect_error(added, 400, 'emoji')
        assert last_seq(alice, cid) == 1        # no event
    after = get_message(alice, cid, m['id'])
    assert after['is_deleted'] is False and after['reactions'] == []


def test_reaction_bad_body_is_400(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'x')
    path = f'conversations/{cid}/messages/{m["id"]}/reactions'
    expect_error(alice.post(path, {}), 400, 'emoji')
    expect_error(alice.post(path, {'emoji': 5}), 400, 'emoji')
    expect_error(alice.post(path, {'emoji': 'ok', 'x': 1}), 400, 'x')


def test_reaction_by_a_non_member_is_404(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'x')
    expect_error(react(tenant.client('eve'), cid, m['id'], 'ok'), 404)
    expect_error(unreact(tenant.client('eve'), cid, m['id'], 'ok'), 404)


def test_reaction_in_an_archived_conversation_is_403(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'x')
    assert alice.delete(f'conversations/{cid}').status == 204
    expect_error(react(tenant.client('bob'), cid, m['id'], 'ok'), 403)


def test_channel_members_may_react(tenant):
    clients, cid = roles_conv(tenant, 'channel')
    m = sent(clients['owner'], cid, 'news')
    r = react(clients['member'], cid, m['id'], 'ok')
    assert r.status == 200, r


def test_events_carry_reactions_with_me_null(tenant, db):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'x')
    react(bob, cid, m['id'], 'ok')
    r = alice.patch(f'conversations/{cid}/messages/{m["id"]}',
                    {'content': 'y'})
    assert r.json['reactions'] == [{'emoji': 'ok', 'count': 1, 'me': False}]
    _, _, payload = event_at(db, cid, last_seq(alice, cid))
    assert payload['message']['reactions'] == [{'emoji': 'ok', 'count': 1,
                                                'me': None}]


def flags(db, mid):
    (files, reactions), = rows(db, 'SELECT has_files, has_reactions FROM '
                                   'chat.messages WHERE id = %s', mid)
    return files, reactions


def test_pages_show_reactions_and_files_as_their_rows_change(tenant, db):
    # pages read reactions and files only where flags on the message say
    # there are some: the flags must follow every change of those rows
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    (fid,), = rows(db, 'INSERT INTO chat.files (tenant_id, uploader_id, '
                       'name, size, content_type, storage_key) VALUES '
                       '(%s, \'alice\', \'f.txt\', 1, \'text/plain\', %s) '
                       'RETURNING id', tenant.name, tenant.name + '/flags')
    m = sent(alice, cid, 'see', attachments=[fid])
    plain = sent(alice, cid, 'plain')
    assert flags(db, m['id']) == (True, False)
    assert flags(db, plain['id']) == (False, False)
    assert [f['id'] for f in history(bob, cid)['items'][1]['attachments']] \
        == [fid]

    react(alice, cid, m['id'], 'a')
    react(bob, cid, m['id'], 'a')
    react(bob, cid, m['id'], 'b')
    unreact(alice, cid, m['id'], 'a')
    unreact(bob, cid, m['id'], 'b')
    assert flags(db, m['id']) == (True, True)
    assert history(bob, cid)['items'][1]['reactions'] == [
        {'emoji': 'a', 'count': 1, 'me': True}]
    r = unreact(bob, cid, m['id'], 'a')
    assert r.json['reactions'] == []
    assert flags(db, m['id']) == (True, False)
    r = react(alice, cid, m['id'], 'c')
    assert r.json['reactions'] == [{'emoji': 'c', 'count': 1, 'me': True}]
    assert history(bob, cid)['items'][1]['reactions'] == [
        {'emoji': 'c', 'count': 1, 'me': False}]

    # a forward carries the files; a delete drops files and reactions
    other = new_conv(alice, 'group', ['bob'])
    f = forward(alice, cid, m['id'], other)
    assert f.status == 201, f
    assert flags(db, f.json['id']) == (True, False)
    assert [a['id'] for a in history(bob, other)['items'][0]['attachments']] \
        == [fid]
    assert alice.delete(f'conversations/{cid}/messages/{m["id"]}').status \
        == 204
    assert flags(db, m['id']) == (False, False)
    tomb = history(bob, cid)['items'][1]
    assert tomb['attachments'] == [] and tomb['reactions'] == []


# forward

def forward(client, cid, mid, target):
    return client.post(f'conversations/{cid}/messages/{mid}/forward',
                       {'conversation_id': target})


def test_forward_into_a_conversation_of_the_caller(tenant, db):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    src = new_conv(alice, 'group', ['bob'])
    dst = new_conv(bob, 'group', ['carol'])
    m = sent(alice, src, 'worth sharing', mentions=['bob'])
    before = last_seq(bob, dst)
    r = forward(bob, src, m['id'], dst)
    assert r.status == 201, r
    f = r.json
    assert set(f) == MESSAGE_KEYS
    assert f['conversation_id'] == dst and f['sender_id'] == 'bob'
    assert f['id'] != m['id'] and f['content'] == 'worth sharing'
    assert f['type'] == 'text' and f['mentions'] == []
    assert f['forwarded_from'] == {'conversation_id': src,
                                   'message_id': m['id'],
                                   'sender_id': 'alice'}
    takes_one_seq(db, bob, dst, before, 'new_message', f['id'])
    assert f['seq'] == before + 1
    assert get_message(tenant.client('carol'), dst, f['id']) \
        ['forwarded_from']['sender_id'] == 'alice'
    # the source is unchanged
    assert last_seq(alice, src) == 1
    assert get_message(alice, src, m['id'])['forwarded_from'] is None


def test_forward_within_the_same_conversation(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'again')
    r = forward(tenant.client('bob'), cid, m['id'], cid)
    assert r.status == 201, r
    assert r.json['seq'] == 2 and r.json['forwarded_from']['message_id'] \
        == m['id']


def test_forward_into_a_conversation_the_caller_is_not_in_is_400(
        tenant, other_tenant):
    alice = tenant.client('alice')
    src = new_conv(alice, 'group', ['bob'])
    theirs = new_conv(tenant.client('carol'), 'group', ['dave'])
    m = sent(alice, src, 'x')
    expect_error(forward(alice, src, m['id'], theirs), 400,
                 'conversation_id')
    expect_error(forward(alice, src, m['id'], 9007199254740991), 400,
                 'conversation_id')
    foreign = new_conv(other_tenant.client('alice'), 'group', ['bob'])
    expect_error(forward(alice, src, m['id'], foreign), 400,
                 'conversation_id')
    assert last_seq(tenant.client('carol'), theirs) == 0


def test_forward_from_a_conversation_the_caller_is_not_in_is_404(tenant):
    alice = tenant.client('alice')
    src = new_conv(alice, 'group', ['bob'])
    m = sent(alice, src, 'x')
    eve = tenant.client('eve')
    dst = new_conv(eve, 'group', ['zed'])
    expect_error(forward(eve, src, m['id'], dst), 404)
    assert last_seq(eve, dst) == 0


def test_forward_into_a_channel_where_the_caller_cannot_post_is_403(tenant):
    clients, chan = roles_conv(tenant, 'channel')
    mem = clients['member']
    src = new_conv(mem, 'group', ['bob'])
    m = sent(mem, src, 'x')
    seq = last_seq(mem, chan)
    expect_error(forward(mem, src, m['id'], chan), 403)
    assert last_seq(mem, chan) == seq
    r = forward(clients['admin'], chan, sent(clients['owner'], chan,
                                             'news')['id'], chan)
    assert r.status == 201, r


def test_forward_bad_input(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'x')
    path = f'conversations/{cid}/messages/{m["id"]}/forward'
    expect_error(alice.post(path, {}), 400, 'conversation_id')
    expect_error(alice.post(path, {'conversation_id': str(cid)}), 400,
                 'conversation_id')
    expect_error(alice.post(path, {'conversation_id': cid, 'x': 1}), 400)
    expect_error(forward(alice, cid, 9007199254740991, cid), 404)


def test_forward_of_a_deleted_message_is_410(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    dst = new_conv(alice, 'group', ['carol'])
    m = sent(alice, cid, 'x')
    assert alice.delete(f'conversations/{cid}/messages/{m["id"]}').status \
        == 204
    expect_error(forward(alice, cid, m['id'], dst), 410)
    assert last_seq(alice, dst) == 0


def test_forward_keeps_type_and_attachments(tenant, db):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    src = new_conv(alice, 'group', ['bob'])
    dst = new_conv(bob, 'group', ['carol'])
    (fid,), = rows(db, 'INSERT INTO chat.files (tenant_id, uploader_id, '
                       'name, size, content_type, storage_key) VALUES '
                       '(%s, \'alice\', \'v.mp4\', 9, \'video/mp4\', %s) '
                       'RETURNING id', tenant.name, tenant.name + '/fwd')
    m = sent(alice, src, None, type='video', attachments=[fid])
    loc = sent(alice, src, 'geo:1,2', type='location')
    f = forward(bob, src, m['id'], dst).json
    assert f['type'] == 'video' and [a['id'] for a in f['attachments']] \
        == [fid]
    f = forward(bob, src, loc['id'], dst).json
    assert f['type'] == 'location' and f['content'] == 'geo:1,2'


# receipts

def receipts(client, cid, mid):
    r = client.get(f'conversations/{cid}/messages/{mid}/receipts')
    assert r.status == 200, r
    assert set(r.json) == {'read_by', 'delivered_to'}
    return r.json


def test_receipts_follow_the_members_read_positions(tenant):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    carol = tenant.client('carol')
    cid = new_conv(alice, 'group', ['bob', 'carol', 'dave'])
    m1 = sent(alice, cid, 'one')
    m2 = sent(alice, cid, 'two')
    assert receipts(alice, cid, m1['id']) == {'read_by': [],
                                              'delivered_to': []}
    assert bob.post(f'conversations/{cid}/read',
                    {'seq': m1['seq']}).status == 200
    assert receipts(alice, cid, m1['id']) == {'read_by': ['bob'],
                                              'delivered_to': ['bob']}
    assert receipts(alice, cid, m2['id']) == {'read_by': [],
                                              'delivered_to': []}
    assert carol.post(f'conversations/{cid}/read').status == 200
    assert receipts(bob, cid, m2['id']) == {'read_by': ['carol'],
                                            'delivered_to': ['carol']}
    dave = tenant.client('dave')
    assert receipts(dave, cid, m1['id']) == {
        'read_by': ['bob', 'carol'], 'delivered_to': ['bob', 'carol']}
    # a reply by bob reads everything before it for bob; bob is not
    # listed for his own message
    m3 = sent(bob, cid, 'three')
    assert receipts(dave, cid, m2['id'])['read_by'] == ['bob', 'carol']
    assert receipts(alice, cid, m3['id']) == {'read_by': [],
                                              'delivered_to': []}


def test_receipts_exclude_the_sender(tenant):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'direct', ['bob'])
    m = sent(alice, cid, 'hi')
    assert alice.post(f'conversations/{cid}/read').status == 200
    assert receipts(alice, cid, m['id']) == {'read_by': [],
                                             'delivered_to': []}
    assert bob.post(f'conversations/{cid}/read').status == 200
    assert receipts(bob, cid, m['id']) == {'read_by': ['bob'],
                                           'delivered_to': ['bob']}


def test_receipts_of_unknown_message_or_conversation_is_404(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'x')
    expect_error(alice.get(f'conversations/{cid}/messages/9007199254740991/'
                           'receipts'), 404)
    expect_error(tenant.client('eve').get(f'conversations/{cid}/messages/'
                                          f'{m["id"]}/receipts'), 404)


# bad input: ids in the path, bodies, other tenants, list sizes

@pytest.mark.parametrize('method, path, field', [
    ('GET', 'conversations/abc/messages', 'conversation_id'),
    ('POST', 'conversations/abc/messages', 'conversation_id'),
    ('GET', 'conversations/0/messages', 'conversation_id'),
    ('GET', 'conversations/9007199254740992/messages', 'conversation_id'),
    ('GET', 'conversations/1e3/messages', 'conversation_id'),
    ('GET', 'conversations/0x10/pins', 'conversation_id'),
    ('POST', 'conversations/-1/read', 'conversation_id'),
    ('POST', 'conversations/+5/read', 'conversation_id'),
    ('GET', '{c}/messages/0', 'message_id'),
    ('PATCH', '{c}/messages/abc', 'message_id'),
    ('DELETE', '{c}/messages/-1', 'message_id'),
    ('POST', '{c}/messages/0/pin', 'message_id'),
    ('DELETE', '{c}/messages/1.5/pin', 'message_id'),
    ('POST', '{c}/messages/9007199254740992/reactions', 'message_id'),
    ('DELETE', '{c}/messages/-1/reactions/ok', 'message_id'),
    ('GET', '{c}/messages/1.5/receipts', 'message_id'),
    ('POST', '{c}/messages/abc/forward', 'message_id'),
    ('POST', 'conversations/x/messages/{m}/forward', 'conversation_id'),
])
def test_bad_id_in_the_path_is_400_naming_it(tenant, method, path, field):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'x')
    body = {'PATCH': {'content': 'y'}}.get(method)
    if path.endswith('reactions'):
        body = {'emoji': 'ok'}
    elif path.endswith('forward'):
        body = {'conversation_id': cid}
    elif path.endswith('/messages') and method == 'POST':
        body = {'content': 'y'}
    r = alice.request(method, path.format(c=f'conversations/{cid}',
                                          m=m['id']), body)
    expect_error(r, 400, f'"{field}"')
    assert last_seq(alice, cid) == 1
    assert get_message(alice, cid, m['id']) == m


@pytest.mark.parametrize('raw', ['{"role":', '[]'])
def test_malformed_json_bodies_of_message_routes_are_400(tenant, raw):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    dst = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'x')
    base = f'conversations/{cid}/messages/{m["id"]}'
    expect_error(alice.patch(base, raw=raw), 400)
    expect_error(alice.post(f'{base}/reactions', raw=raw), 400)
    expect_error(alice.post(f'{base}/forward', raw=raw), 400)
    assert get_message(alice, cid, m['id']) == m
    assert last_seq(alice, cid) == 1 and last_seq(alice, dst) == 0


def test_non_member_cannot_edit_pin_or_forward_a_message(tenant):
    alice = tenant.client('alice')
    eve = tenant.client('eve')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'members only')
    pinned = sent(alice, cid, 'pinned')
    r = alice.post(f'conversations/{cid}/messages/{pinned["id"]}/pin')
    assert r.status == 200, r
    mine = new_conv(eve, 'group', ['zed'])
    seq = last_seq(alice, cid)
    base = f'conversations/{cid}/messages'
    expect_error(eve.patch(f'{base}/{m["id"]}', {'content': 'eve was here'}),
                 404)
    expect_error(eve.post(f'{base}/{m["id"]}/pin'), 404)
    expect_error(eve.delete(f'{base}/{pinned["id"]}/pin'), 404)
    expect_error(forward(eve, cid, m['id'], mine), 404)
    assert last_seq(alice, cid) == seq
    assert last_seq(eve, mine) == 0
    got = get_message(alice, cid, m['id'])
    assert (got['content'], got['is_edited'], got['is_pinned']) == \
        ('members only', False, False)
    assert get_message(alice, cid, pinned['id'])['is_pinned'] is True


def test_other_tenant_cannot_read_or_change_messages(tenant, other_tenant):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'tenant A only')
    react(bob, cid, m['id'], 'ok')
    assert bob.post(f'conversations/{cid}/read').status == 200
    seq = last_seq(alice, cid)
    before = get_message(alice, cid, m['id'])
    base = f'conversations/{cid}/messages'
    for user in ('alice', 'bob'):           # the same user ids, tenant B
        c = other_tenant.client(user)
        theirs = new_conv(c, 'group', ['carol'])
        expect_error(c.get(base), 404)
        expect_error(c.get(f'{base}?after=0'), 404)
        expect_error(c.get(f'{base}/{m["id"]}'), 404)
        expect_error(c.patch(f'{base}/{m["id"]}', {'content': 'pwned'}),
                     404)
        expect_error(c.delete(f'{base}/{m["id"]}'), 404)
        expect_error(c.post(f'{base}/{m["id"]}/pin'), 404)
        expect_error(c.delete(f'{base}/{m["id"]}/pin'), 404)
        expect_error(react(c, cid, m['id'], 'bad'), 404)
        expect_error(unreact(c, cid, m['id'], 'ok'), 404)
        expect_error(c.get(f'{base}/{m["id"]}/receipts'), 404)
        expect_error(forward(c, cid, m['id'], theirs), 404)
        expect_error(send(c, cid, 'hi'), 404)
        expect_error(c.get(f'conversations/{cid}/pins'), 404)
        assert last_seq(c, theirs) == 0
    # tenant A is unchanged
    assert last_seq(alice, cid) == seq
    assert get_message(alice, cid, m['id']) == before
    assert before['content'] == 'tenant A only'
    assert before['reactions'] == [{'emoji': 'ok', 'count': 1, 'me': False}]
    assert before['is_pinned'] is False and before['is_deleted'] is False
    assert receipts(alice, cid, m['id']) == {'read_by': ['bob'],
                                             'delivered_to': ['bob']}
    assert [i['id'] for i in history(bob, cid)['items']] == [m['id']]


def test_mentions_over_50_are_400(tenant):
    alice = tenant.client('alice')
    users = [f'u{i:02}' for i in range(51)]
    cid = new_conv(alice, 'group', users)
    m = sent(alice, cid, 'all of you', mentions=users[:50])
    assert sorted(m['mentions']) == users[:50]
    expect_error(send(alice, cid, 'all of you', mentions=users), 400,
                 '"mentions"')
    assert last_seq(alice, cid) == 1


def test_attachments_over_10_are_400(tenant, db):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    files = [rows(db, 'INSERT INTO chat.files (tenant_id, uploader_id, '
                      'name, size, content_type, storage_key) VALUES '
                      '(%s, \'alice\', %s, 1, \'text/plain\', %s) '
                      'RETURNING id', tenant.name, f'f{i}.txt',
                  f'{tenant.name}/many{i}')[0][0] for i in range(11)]
    m = sent(alice, cid, 'ten', type='file', attachments=files[:10])
    assert [f['id'] for f in m['attachments']] == files[:10]
    expect_error(send(alice, cid, 'eleven', type='file', attachments=files),
                 400, '"attachments"')
    assert last_seq(alice, cid) == 1


def test_history_cursor_over_40_characters_is_400(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    sent(alice, cid, 'one')
    sent(alice, cid, 'two')
    expect_error(alice.get(f'conversations/{cid}/messages?cursor='
                           + 'b' * 41), 400, '"cursor"')
    # the list's own cursors fit, and are taken
    page = history(alice, cid, limit=1)
    cursor = page['next_cursor']
    assert cursor is not None and len(cursor) <= 40
    assert contents(history(alice, cid, limit=1, cursor=cursor)) == ['one']
