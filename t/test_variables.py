"""$chat_user and $chat_tenant (README, "Variables"): the identity of the
request's verified token, for log_format, map and limit_req_zone.
"""

import time

import pytest

from wsclient import ChatWS, HandshakeRefused


@pytest.fixture(scope='module')
def logged(stack):
    return stack.nginx(name='variables', EXTRA='''
        log_format chat '$chat_tenant|$chat_user|$status|$uri';
        access_log ${PREFIX}/logs/chat.log chat;
        limit_req_zone $chat_user zone=per_user:1m rate=1r/m;
        limit_req zone=per_user burst=3 nodelay;
        limit_req_status 429;
    '''.replace('${PREFIX}', str(stack.root / 'variables')))


def lines(nginx, uri):
    time.sleep(0.2)
    text = (nginx.prefix / 'logs' / 'chat.log').read_text()
    return [l.split('|') for l in text.splitlines() if l.endswith('|' + uri)]


def test_the_log_names_the_user_of_a_good_token(logged, tenant):
    alice = tenant.client('alice', nginx=logged)
    assert alice.get('conversations?limit=1').status == 200
    assert [tenant.name, 'alice', '200', '/api/chat/conversations'] in \
        lines(logged, '/api/chat/conversations')
    # a bad token names nobody (the log writes "-" for what is not found)
    r = tenant.anonymous(nginx=logged).get('presence?user_ids=x',
                                           token='x.y.z')
    assert r.status == 401
    assert ['-', '-', '401', '/api/chat/presence'] in \
        lines(logged, '/api/chat/presence')


@pytest.mark.parametrize('how', ['header', 'subprotocol', 'query'])
def test_a_websocket_handshake_is_logged_with_its_user(logged, tenant, how):
    token = tenant.token('bob')
    kw = {}
    if how == 'header':
        kw['headers'] = {'Authorization': f'Bearer {token}'}
        token = None
    elif how == 'subprotocol':
        kw['headers'] = {'Sec-WebSocket-Protocol': f'chat, bearer.{token}'}
        token = None
    c = ChatWS(logged.port, token, **kw)
    c.connect()
    c.close()
    time.sleep(0.3)
    assert any(l[:2] == [tenant.name, 'bob'] for l in lines(logged,
                                                           '/ws/chat'))


def test_limit_req_counts_per_user(logged, new_tenant):
    t = new_tenant()
    carol, dave = t.client('carol', nginx=logged), t.client('dave',
                                                           nginx=logged)
    got = [carol.get('conversations').status for _ in range(5)]
    assert got == [200] * 4 + [429], got
    assert dave.get('conversations').status == 200
    # without a token there is no key: health is never limited here
    assert all(logged.health() == 200 for _ in range(6))
