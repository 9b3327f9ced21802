"""The health route reports the Postgres pool of the worker that answers,
and its Redis links: "ok", "degraded" (200: Redis is away, REST works and
live delivery waits for it), "unavailable" (503: no Postgres)."""

import http.client
import json

import chatstack


def test_health_reports_a_ready_pool(tenant):
    r = tenant.anonymous().get('health')
    assert r.status == 200, r
    pg = r.json['postgres']
    assert r.json['status'] == 'ok'
    assert pg['connections'] == 4 and pg['ready'] >= 1
    assert r.json['redis'] == {'publisher': 'up', 'subscriber': 'up'}


def test_health_says_degraded_while_redis_is_away(own_stack):
    ng = own_stack.nginx()

    def health():
        c = http.client.HTTPConnection('127.0.0.1', ng.port, timeout=5)
        c.request('GET', '/api/chat/health')
        resp = c.getresponse()
        body = json.loads(resp.read())
        c.close()
        return resp.status, body

    own_stack.redis.stop()
    try:
        chatstack.wait_for(lambda: health()[1]['status'] == 'degraded', 10,
                           'health to say degraded')
        status, body = health()
        assert status == 200
        assert 'down' in body['redis'].values()
    finally:
        own_stack.redis.start()
    chatstack.wait_for(lambda: health()[1]['status'] == 'ok', 20,
                       'health to say ok again')
    assert health()[1]['redis'] == {'publisher': 'up', 'subscriber': 'up'}
