"""Search (API.md section 4 Search, section 6 Search): full-text over the
caller's conversations only, whole words with the last word also as a
prefix, no stemming, case-insensitive; filters; paging; relevance, then
recency.  The search cursor is an offset into the ranked hits.
"""

import urllib.parse

import psycopg2
import pytest


MESSAGE_KEYS = {
    'id', 'conversation_id', 'seq', 'sender_id', 'type', 'content',
    'attachments', 'reply_to', 'reply_count', 'forwarded_from', 'mentions',
    'reactions', 'is_edited', 'edited_at', 'is_deleted', 'is_pinned',
    'client_id', 'created_at', 'poll', 'bot',
}


def expect_error(r, status, message=None):
    assert r.status == status, r
    body = r.json
    assert set(body) == {'error'}, r
    assert body['error']['code'] == {400: 'bad_request',
                                     404: 'not_found'}[status], r
    assert body['error']['message'], r
    if message is not None:
        assert message in body['error']['message'], r


def new_conv(client, type='group', members=(), **fields):
    return client.create(type, members, **fields)['id']


def sent(client, cid, content, **fields):
    r = client.post(f'conversations/{cid}/messages',
                    dict(content=content, **fields))
    assert r.status == 201, r
    return r.json


def search_raw(client, **params):
    return client.get('search?' + urllib.parse.urlencode(params))


def search(client, **params):
    r = search_raw(client, **params)
    assert r.status == 200, r
    assert set(r.json) == {'items', 'next_cursor'}, r
    return r.json


def found(client, **params):
    """The contents found, in order (all on one page)."""
    page = search(client, limit=100, **params)
    assert page['next_cursor'] is None
    return [m['content'] for m in page['items']]


def found_ids(client, **params):
    page = search(client, limit=100, **params)
    return [m['id'] for m in page['items']]


@pytest.fixture
def db(stack):
    conn = psycopg2.connect(stack.pg.conninfo)
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture
def other_tenant(tenant):
    """A second fresh tenant on the same nginx (its users may bear the same
    names as those of `tenant`)."""
    return type(tenant)(tenant.stack, tenant.nginx)


# words

@pytest.fixture
def words(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    for text in ('the quick brown fox', 'quickly brown', 'running shoes',
                 'run fast', 'Hello WORLD', '\u00c4rger im B\u00fcro',
                 'cats and dogs'):
        sent(alice, cid, text)
    return alice, cid


def test_search_matches_whole_words(words):
    alice, _ = words
    assert found(alice, q='quick brown') == ['the quick brown fox']
    assert found(alice, q='fox the') == ['the quick brown fox']
    assert found(alice, q='brown') == ['quickly brown', 'the quick brown fox']
    assert found(alice, q='quick fox') == ['the quick brown fox']
    assert found(alice, q='rown fox') == []
    assert found(alice, q='quic brown') == []


def test_search_takes_the_last_word_as_a_prefix(words):
    alice, _ = words
    assert sorted(found(alice, q='brown qui')) == ['quickly brown',
                                                   'the quick brown fox']
    assert found(alice, q='brown quickl') == ['quickly brown']
    assert found(alice, q='shoes r') == ['running shoes']
    assert found(alice, q='he') == ['Hello WORLD']


def test_search_has_no_stemming(words):
    alice, _ = words
    # "running" is not the word "run" ...
    assert found(alice, q='run shoes') == []
    assert found(alice, q='run fast') == ['run fast']
    # ... unless "run" is the last word, a prefix
    assert sorted(found(alice, q='run')) == ['run fast', 'running shoes']
    assert found(alice, q='runs') == []
    assert found(alice, q='cat dogs') == []
    assert found(alice, q='cats dog') == ['cats and dogs']


def test_search_is_case_insensitive(words):
    alice, _ = words
    for q in ('hello world', 'HELLO', 'wORLD hello', 'HeLlO WoRlD'):
        assert found(alice, q=q) == ['Hello WORLD'], q
    for q in ('\u00e4rger', '\u00c4RGER b\u00fcro', 'B\u00dcRO'):
        assert found(alice, q=q) == ['\u00c4rger im B\u00fcro'], q


def test_search_ignores_punctuation_in_the_query(words):
    alice, _ = words
    assert found(alice, q='"quick", brown!') == ['the quick brown fox']
    assert found(alice, q='hello & world | !x') == []
    assert found(alice, q="hello: world's") == []
    assert found(alice, q="'hello' (world)") == ['Hello WORLD']


@pytest.mark.parametrize('q', ['bob@example.com', 'example.com', '3.14',
                               'v1.5', 'https://example.com/path'])
def test_search_finds_tokens_typed_as_in_the_message(tenant, q):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    text = ('mail bob@example.com or see https://example.com/path on '
            'example.com, pi is 3.14 since v1.5')
    sent(alice, cid, text)
    assert found(alice, q=q) == [text]


# what is searched

def test_search_answers_messages(tenant):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'findable words')
    r = bob.post(f'conversations/{cid}/messages/{m["id"]}/reactions',
                 {'emoji': 'ok'})
    assert r.status == 200, r
    page = search(alice, q='findable')
    assert page['next_cursor'] is None
    item, = page['items']
    assert set(item) == MESSAGE_KEYS
    assert item['id'] == m['id'] and item['conversation_id'] == cid
    assert item['reactions'] == [{'emoji': 'ok', 'count': 1, 'me': False}]
    assert search(bob, q='findable')['items'][0]['reactions'][0]['me'] \
        is True


def test_search_covers_only_the_callers_conversations(tenant,
                                                      other_tenant):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    carol = tenant.client('carol')
    mine = new_conv(alice, 'group', ['bob'])
    direct = new_conv(bob, 'direct', ['alice'])
    theirs = new_conv(bob, 'group', ['carol'])
    a = sent(alice, mine, 'zebra crossing here')
    d = sent(bob, direct, 'a zebra in private')
    t = sent(carol, theirs, 'zebra crossing there')
    other = other_tenant
    oa = other.client('alice')
    ocid = new_conv(oa, 'group', ['bob'])
    o = sent(oa, ocid, 'zebra crossing elsewhere')
    assert sorted(found_ids(alice, q='zebra')) == sorted([a['id'], d['id']])
    assert sorted(found_ids(bob, q='zebra')) == sorted([a['id'], d['id'],
                                                        t['id']])
    assert found_ids(carol, q='zebra') == [t['id']]
    assert found_ids(oa, q='zebra') == [o['id']]
    # naming a conversation one is not in finds nothing
    assert found_ids(alice, q='zebra', conversation_id=theirs) == []
    assert found_ids(alice, q='zebra', conversation_id=ocid) == []
    assert found_ids(oa, q='zebra', conversation_id=mine) == []
    assert found_ids(tenant.client('eve'), q='zebra') == []


def test_search_stops_at_leaving_a_conversation(tenant):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(bob, 'group', ['alice'])
    sent(bob, cid, 'walrus sighting')
    assert found(alice, q='walrus') == ['walrus sighting']
    assert alice.delete(f'conversations/{cid}/members/alice').status == 204
    assert found(alice, q='walrus') == []


def test_search_never_shows_deleted_messages(tenant):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    gone = sent(alice, cid, 'ephemeral secret')
    kept = sent(bob, cid, 'ephemeral but kept')
    assert alice.delete(f'conversations/{cid}/messages/{gone["id"]}') \
        .status == 204
    assert found_ids(alice, q='ephemeral') == [kept['id']]
    assert found_ids(bob, q='secret') == []
    # deleted by a moderator too
    assert alice.delete(f'conversations/{cid}/messages/{kept["id"]}') \
        .status == 204
    assert found_ids(bob, q='ephemeral') == []


def test_search_follows_edits(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    m = sent(alice, cid, 'colour of the sky')
    r = alice.patch(f'conversations/{cid}/messages/{m["id"]}',
                    {'content': 'color of the sea'})
    assert r.status == 200, r
    assert found(alice, q='colour') == []
    assert found(alice, q='color sea') == ['color of the sea']


# filters

@pytest.fixture
def mixed(tenant):
    """alice, bob and carol talk about budgets in two conversations."""
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    carol = tenant.client('carol')
    one = new_conv(alice, 'group', ['bob', 'carol'])
    two = new_conv(alice, 'group', ['bob'])
    msgs = {
        'a1': sent(alice, one, 'budget one from alice'),
        'b1': sent(bob, one, 'budget one from bob'),
        'c1': sent(carol, one, 'budget call with carol', type='call'),
        'a2': sent(alice, two, 'budget two from alice'),
        'b2': sent(bob, two, 'budget two from bob', type='emoji'),
    }
    return alice, one, two, msgs


def ids_of(msgs, *names):
    return sorted(msgs[n]['id'] for n in names)


def test_search_filter_by_conversation(mixed):
    alice, one, two, msgs = mixed
    assert sorted(found_ids(alice, q='budget', conversation_id=one)) == \
        ids_of(msgs, 'a1', 'b1', 'c1')
    assert sorted(found_ids(alice, q='budget', conversation_id=two)) == \
        ids_of(msgs, 'a2', 'b2')


def test_search_filter_by_sender(mixed):
    alice, one, two, msgs = mixed
    assert sorted(found_ids(alice, q='budget', sender_id='bob')) == \
        ids_of(msgs, 'b1', 'b2')
    assert sorted(found_ids(alice, q='budget', sender_id='bob',
                            conversation_id=two)) == ids_of(msgs, 'b2')
    assert found_ids(alice, q='budget', sender_id='nobody') == []


def test_search_filter_by_type(mixed):
    alice, one, two, msgs = mixed
    assert found_ids(alice, q='budget', type='call') == ids_of(msgs, 'c1')
    assert found_ids(alice, q='budget', type='emoji') == ids_of(msgs, 'b2')
    assert sorted(found_ids(alice, q='budget', type='text')) == \
        ids_of(msgs, 'a1', 'b1', 'a2')
    assert found_ids(alice, q='budget', type='location') == []


def test_search_filter_by_time(mixed, db):
    alice, one, two, msgs = mixed
    when = {'a1': '2020-06-01T00:00:00Z', 'b1': '2021-06-01T00:00:00Z',
            'c1': '2022-06-01T00:00:00Z', 'a2': '2023-06-01T00:00:00Z',
            'b2': '2024-06-01T00:00:00Z'}
    with db.cursor() as cur:
        for name, ts in when.items():
            cur.execute('UPDATE chat.messages SET created_at = %s '
                        'WHERE id = %s', (ts, msgs[name]['id']))
    assert search(alice, q='budget')['items'][0]['created_at'] == \
        '2024-06-01T00:00:00.000Z'
    assert sorted(found_ids(alice, q='budget', **{
        'from': '2022-06-01T00:00:00Z'})) == ids_of(msgs, 'c1', 'a2', 'b2')
    # "to" is exclusive
    assert sorted(found_ids(alice, q='budget', to='2022-06-01T00:00:00Z')) \
        == ids_of(msgs, 'a1', 'b1')
    assert sorted(found_ids(alice, q='budget', to='2022-06-01T00:00:00.001Z',
                            **{'from': '2021-01-01T00:00:00Z'})) == \
        ids_of(msgs, 'b1', 'c1')
    # offsets are honoured: 02:00+02:00 is midnight UTC
    assert found_ids(alice, q='budget', **{
        'from': '2024-06-01T02:00:00+02:00'}) == ids_of(msgs, 'b2')
    assert found_ids(alice, q='budget', **{
        'from': '2024-06-01T01:00:00+00:00'}) == []
    assert found_ids(alice, q='budget', to='2020-01-01T00:00:00Z') == []
    assert found_ids(alice, q='budget', conversation_id=one, sender_id='bob',
                     type='text', to='2021-06-02T00:00:00Z',
                     **{'from': '2021-05-31T00:00:00Z'}) == \
        ids_of(msgs, 'b1')


# paging and order

def test_search_pages_by_cursor_without_gap_or_duplicate(tenant):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    ids = [sent(alice, cid, f'pageable item {i}')['id'] for i in range(7)]
    sent(alice, cid, 'something else')
    got, pages, cursor = [], [], None
    while True:
        params = {'q': 'pageable', 'limit': 3}
        if cursor:
            params['cursor'] = cursor
        page = search(alice, **params)
        pages.append(len(page['items']))
        got += [m['id'] for m in page['items']]
        cursor = page['next_cursor']
        if cursor is None:
            break
        assert isinstance(cursor, str)
    assert pages == [3, 3, 1]
    assert len(got) == len(set(got)) == 7
    # equal relevance: newest first
    assert got == ids[::-1]
    # exactly a page full leaves no cursor
    assert search(alice, q='pageable', limit=7)['next_cursor'] is None
    assert search(alice, q='pageable', limit=6)['next_cursor'] is not None


def test_search_orders_by_relevance_then_recency(tenant):
    alice = tenant.client('alice')
    bob = tenant.client('bob')
    cid = new_conv(alice, 'group', ['bob'])
    strong = sent(alice, cid, 'apple apple apple tart')
    older = sent(bob, cid, 'apple tart')
    medium = sent(alice, cid, 'apple pie apple')
    newer = sent(bob, cid, 'apple tart')
    newest = sent(alice, cid, 'apple tart')
    assert found_ids(alice, q='apple') == [strong['id'], medium['id'],
                                           newest['id'], newer['id'],
                                           older['id']]
    assert found_ids(alice, q='tart apple') == [strong['id'], newest['id'],
                                                newer['id'], older['id']]


def test_search_limit_over_100_is_clamped(tenant, db):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    with db.cursor() as cur:
        cur.execute(cur.mogrify(
            'DO $$ BEGIN FOR i IN 1..105 LOOP '
            'PERFORM chat.api_message_send(%s, \'alice\', NULL, '
            'jsonb_build_object(\'conversation_id\', %s::bigint, '
            '\'content\', \'plenty \' || i)); END LOOP; END $$',
            (tenant.name, cid)).decode())
    page = search(alice, q='plenty', limit=500)
    assert len(page['items']) == 100 and page['next_cursor'] is not None
    page = search(alice, q='plenty', limit=100, cursor=page['next_cursor'])
    assert len(page['items']) == 5 and page['next_cursor'] is None
    assert len(search(alice, q='plenty')['items']) == 50


# bad input

@pytest.mark.parametrize('query', [
    '', 'q=', 'q=%20%20', 'q=!!!%20???', 'q=%F0%9F%98%80', 'q=-',
    'q=' + 'a' * 257,
    'q=x&from=yesterday', 'q=x&from=2024-13-01T00:00:00Z',
    'q=x&from=2024-02-30T00:00:00Z', 'q=x&to=2024-01-01',
    'q=x&to=2024-01-01T00:00:00', 'q=x&to=2024-01-01T25:00:00Z',
    'q=x&type=sticker', 'q=x&conversation_id=abc',
    'q=x&conversation_id=0', 'q=x&limit=0', 'q=x&limit=many',
    'q=x&cursor=abc', 'q=x&cursor=-3', 'q=x&cursor=99999',
    'q=x&sender_id=', 'q=%FF', 'q=caf%C3',
])
def test_search_bad_input_is_400(tenant, query):
    alice = tenant.client('alice')
    cid = new_conv(alice, 'group', ['bob'])
    sent(alice, cid, 'x marks the spot')
    expect_error(alice.get('search?' + query), 400)


def test_search_without_matches_is_an_empty_page(tenant):
    alice = tenant.client('alice')
    assert search(alice, q='nothing') == {'items': [], 'next_cursor': None}
