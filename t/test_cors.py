"""CORS for pages on other origins (chat_cors_origins; docs/api.md,
"Conventions"): an allowed origin may call the API and read its answers,
a preflight is answered by the module, others get no CORS headers and a
refused preflight.  Off by default.
"""

import pytest

from chatclient import expect_error

SITE = 'https://app.example.com'


@pytest.fixture(scope='module')
def cors(stack):
    return stack.nginx(name='cors', EXTRA=f'chat_cors_origins {SITE} '
                                          'https://other.example.com;')


def preflight(client, origin, method='POST'):
    return client.request('OPTIONS', 'conversations', token=None, headers={
        'Origin': origin, 'Access-Control-Request-Method': method,
        'Access-Control-Request-Headers': 'authorization, content-type'})


def test_preflight_of_an_allowed_origin(cors, tenant):
    r = preflight(tenant.client('alice', nginx=cors), SITE)
    assert r.status == 204, r
    h = r.headers
    assert h['Access-Control-Allow-Origin'] == SITE
    assert h['Vary'] == 'Origin'
    assert 'PATCH' in h['Access-Control-Allow-Methods']
    assert 'Authorization' in h['Access-Control-Allow-Headers']
    assert 'Content-Type' in h['Access-Control-Allow-Headers']
    assert int(h['Access-Control-Max-Age']) > 0
    # bearer tokens, never cookies: no credentials
    assert 'Access-Control-Allow-Credentials' not in h


def test_answers_to_an_allowed_origin_can_be_read(cors, tenant):
    alice = tenant.client('alice', nginx=cors)
    r = alice.get('conversations', headers={'Origin': SITE})
    assert r.status == 200
    assert r.headers['Access-Control-Allow-Origin'] == SITE
    assert 'Retry-After' in r.headers['Access-Control-Expose-Headers']
    # errors too, so that the page can read why
    r = alice.get('conversations/999999', headers={'Origin': SITE})
    assert r.status == 404
    assert r.headers['Access-Control-Allow-Origin'] == SITE
    # and a download, sent by nginx after the check
    f = alice.post('files', raw=b'x', headers={'Content-Type': 'text/plain',
                                                'Origin': SITE}).json
    r = alice.get(f'files/{f["id"]}', headers={'Origin': SITE})
    assert r.status == 200 and r.data == b'x'
    assert r.headers['Access-Control-Allow-Origin'] == SITE


def test_another_origin_gets_no_cors_headers(cors, tenant):
    alice = tenant.client('alice', nginx=cors)
    r = alice.get('conversations', headers={'Origin': 'https://evil.test'})
    assert 'Access-Control-Allow-Origin' not in r.headers
    expect_error(preflight(alice, 'https://evil.test'), 403,
                 'chat_cors_origins')
    # an origin is matched whole
    r = preflight(alice, SITE + '.evil.test')
    assert r.status == 403


def test_off_by_default(tenant):
    alice = tenant.client('alice')
    r = alice.get('conversations', headers={'Origin': SITE})
    assert r.status == 200
    assert 'Access-Control-Allow-Origin' not in r.headers
    r = preflight(alice, SITE)
    assert r.status == 405


def test_any_origin(stack, tenant):
    ng = stack.nginx(name='cors-any', EXTRA='chat_cors_origins *;')
    r = preflight(tenant.client('alice', nginx=ng), 'https://x.test')
    assert r.status == 204
    assert r.headers['Access-Control-Allow-Origin'] == 'https://x.test'


@pytest.mark.parametrize('origin', ['example.com', 'https://a.test/'])
def test_bad_origins_are_refused_by_nginx_t(check_config, origin):
    out = check_config(EXTRA=f'chat_cors_origins {origin};')
    assert out.returncode != 0
    assert 'chat_cors_origins' in out.stderr and origin in out.stderr
