"""The content filter (chat_filter; docs/api.md, "Limits"): patterns that
mask what they match or refuse the text, in message content (sent and
edited, over REST and WebSocket), conversation titles and descriptions,
and file names; per tenant where a pattern says so.
"""

import uuid

import pytest

from chatclient import expect_error
from wsclient import ChatWS

ACME = 'acme-' + uuid.uuid4().hex[:8]


@pytest.fixture(scope='module')
def filtered(stack):
    return stack.nginx(name='filter', EXTRA=f'''
        chat_filter "\\bdarn\\b" mask;
        chat_filter "spam-link\\.test" reject;
        chat_filter "rivalcorp" reject tenant={ACME};
    ''')


def rejected(r):
    assert r.status == 400, r
    assert r.json['error']['code'] == 'content_rejected', r
    assert 'chat_filter' in r.json['error']['message']


def test_mask_and_reject_in_messages(filtered, tenant):
    alice = tenant.client('alice', nginx=filtered)
    cid = alice.create('group', ['bob'])['id']
    r = alice.post(f'conversations/{cid}/messages',
                   {'content': 'Darn it, darnation, DARN! caf\u00e9 darn'})
    assert r.status == 201, r
    # whole words only, any case; one star a character
    assert r.json['content'] == '**** it, darnation, ****! caf\u00e9 ****'
    rejected(alice.post(f'conversations/{cid}/messages',
                        {'content': 'see http://spam-link.test/x'}))
    mid = r.json['id']
    r = alice.patch(f'conversations/{cid}/messages/{mid}',
                    {'content': 'edited darn'})
    assert r.json['content'] == 'edited ****'
    rejected(alice.patch(f'conversations/{cid}/messages/{mid}',
                         {'content': 'spam-link.test'}))
    # what was refused was not stored
    got = alice.get(f'conversations/{cid}/messages').json['items']
    assert [m['content'] for m in got] == ['edited ****']


def test_over_websocket(filtered, tenant):
    alice = tenant.client('alice', nginx=filtered)
    cid = alice.create('group', ['bob'])['id']
    c = ChatWS(filtered.port, tenant.token('alice'))
    c.connect()
    c.start()
    try:
        a = c.request('send_message', conversation_id=cid, content='oh darn')
        assert a['type'] == 'ack' and a['message']['content'] == 'oh ****'
        a = c.request('send_message', conversation_id=cid,
                      content='spam-link.test')
        assert a['type'] == 'error', a
        assert a['error']['code'] == 'content_rejected'
    finally:
        c.close()


def test_titles_descriptions_and_file_names(filtered, tenant):
    alice = tenant.client('alice', nginx=filtered)
    r = alice.post('conversations', dict(type='group', member_ids=['bob'],
                                          title='darn club',
                                          description='no darn spam'))
    assert r.status == 201, r
    assert r.json['title'] == '**** club'
    assert r.json['description'] == 'no **** spam'
    rejected(alice.post('conversations', dict(type='group', member_ids=[],
                                              title='spam-link.test')))
    rejected(alice.patch(f'conversations/{r.json["id"]}',
                         {'title': 'spam-link.test'}))
    f = alice.post('files?name=darn.txt', raw=b'x',
                   headers={'Content-Type': 'text/plain'})
    assert f.status == 201 and f.json['name'] == '****.txt'
    rejected(alice.post('files?name=spam-link.test.txt', raw=b'x',
                        headers={'Content-Type': 'text/plain'}))


def test_a_pattern_of_one_tenant(filtered, new_tenant, tenant):
    acme = new_tenant(ACME)
    a = acme.client('alice', nginx=filtered)
    cid = a.create('group', ['bob'])['id']
    rejected(a.post(f'conversations/{cid}/messages',
                    {'content': 'RivalCorp is better'}))
    other = tenant.client('alice', nginx=filtered)
    cid = other.create('group', ['bob'])['id']
    assert other.post(f'conversations/{cid}/messages',
                      {'content': 'RivalCorp is better'}).status == 201


@pytest.mark.parametrize('extra, fault', [
    ('chat_filter "(unclosed";', 'chat_filter'),
    ('chat_filter "x" erase;', 'unknown parameter'),
])
def test_bad_filters_are_refused_by_nginx_t(check_config, extra, fault):
    out = check_config(EXTRA=extra)
    assert out.returncode != 0
    assert fault in out.stderr, out.stderr
