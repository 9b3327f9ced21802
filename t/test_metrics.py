"""chat_metrics (README, "Metrics"): the Prometheus text format, checked
here by a strict parser of the exposition format; counters shared by the
workers and kept across a reload, gauges summed over the workers alive,
never a label of a user or a conversation.
"""

import http.client
import math
import re
import time

import pytest

import chatstack
from conftest import Tenant
from wsclient import ChatWS

NAME = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*$')
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"(,|$)')


def parse(text):
    """{family: (type, {labels tuple: value})}; raises on any fault."""
    assert text.endswith('\n')
    families, helped, current = {}, set(), None
    for line in text.split('\n')[:-1]:
        if line.startswith('# HELP '):
            name = line.split(' ')[2]
            assert NAME.match(name) and name not in helped, line
            helped.add(name)
            continue
        if line.startswith('# TYPE '):
            _, _, name, kind = line.split(' ')
            assert kind in ('counter', 'gauge', 'histogram'), line
            assert name not in families, f'{name} typed twice'
            assert name in helped, f'{name} has no HELP'
            families[name] = (kind, {})
            current = name
            continue
        assert not line.startswith('#'), line
        m = SAMPLE.match(line)
        assert m, f'not a sample: {line!r}'
        name, _, labels, value = m.groups()
        pairs = tuple(LABEL.findall(labels or ''))
        if labels:
            assert ','.join(f'{k}="{v}"' for k, v, _ in pairs) == labels, line
        v = float(value)
        assert not math.isnan(v) and v >= 0, line
        kind, samples = families[current]
        if kind == 'histogram':
            assert name in (current + '_bucket', current + '_sum',
                            current + '_count'), line
        else:
            assert name == current, line
        if kind == 'counter':
            assert name.endswith('_total'), name
        key = (name,) + tuple((k, v) for k, v, _ in pairs)
        assert key not in samples, f'repeated {line}'
        samples[key] = v
    for name, (kind, samples) in families.items():
        assert name.startswith('ngx_chat_'), name
        if kind == 'histogram':
            buckets = [(float(dict(k[1:])['le']), v) for k, v in
                       samples.items() if k[0].endswith('_bucket')]
            buckets.sort()
            assert buckets[-1][0] == math.inf
            values = [v for _, v in buckets]
            assert values == sorted(values), name
            assert samples[(name + '_count',)] == values[-1], name
    return families


def value(families, name, **labels):
    family = name if name in families else name.rsplit('_', 1)[0]
    kind, samples = families[family]
    key = ((name,) + tuple(labels.items()))
    return samples[key]


def metered_nginx(stack, name):
    ng = stack.nginx(name=name, start=False, EXTRA='', WS_EXTRA='')
    # the location goes beside the others, allowed from loopback only
    conf = ng.template.read_text().replace(
        '        location = /ws/chat {',
        '        location = /metrics {\n            chat_metrics;\n'
        '            allow 127.0.0.1;\n            deny all;\n        }\n\n'
        '        location = /ws/chat {', 1)
    path = stack.root / f'{name}.conf'
    path.write_text(conf)
    ng.template = path
    ng.start()
    ng.wait_ready()
    return ng


@pytest.fixture(scope='module')
def metered(stack):
    return metered_nginx(stack, 'metrics')


def scrape(ng):
    c = http.client.HTTPConnection('127.0.0.1', ng.port, timeout=5)
    c.request('GET', '/metrics')
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    assert r.status == 200
    assert r.getheader('Content-Type').startswith('text/plain; version=0.0.4')
    return parse(body)


def test_the_format_is_strictly_prometheus(metered):
    f = scrape(metered)
    (key, one), = f['ngx_chat_build_info'][1].items()
    labels = dict(key[1:])
    assert one == 1 and labels['version'] == '0.1.0'
    assert re.match(r'^\d+\.\d+\.\d+$', labels['nginx'])
    for name in ('ngx_chat_ws_connections_opened_total',
                 'ngx_chat_messages_sent_total', 'ngx_chat_errors_total',
                 'ngx_chat_rate_limited_total', 'ngx_chat_ws_connections',
                 'ngx_chat_pg_query_duration_seconds',
                 'ngx_chat_redis_links_up', 'ngx_chat_redis_pending_bytes',
                 'ngx_chat_zone_size_bytes', 'ngx_chat_zone_used_bytes'):
        assert name in f, name


def test_the_zones_say_their_size_and_use(metered):
    f = scrape(metered)
    size = {dict(k[1:])['zone']: v
            for k, v in f['ngx_chat_zone_size_bytes'][1].items()}
    used = {dict(k[1:])['zone']: v
            for k, v in f['ngx_chat_zone_used_bytes'][1].items()}
    # dev.conf's presence zone (16m) and the metrics' own
    assert set(size) == set(used) == {'chat_presence', 'ngx_chat_metrics'}
    assert 15 * 2**20 < size['chat_presence'] <= 16 * 2**20
    for zone in size:
        assert 0 < used[zone] < size[zone], zone


def test_counters_and_gauges_follow_the_traffic(metered, tenant):
    before = scrape(metered)
    alice = tenant.client('alice', nginx=metered)
    cid = alice.create('group', ['bob'])['id']
    for i in range(3):
        alice.post(f'conversations/{cid}/messages', {'content': f'm{i}'})
    alice.get('conversations/999999')           # a 404
    conns = []
    for _ in range(4):
        c = ChatWS(metered.port, tenant.token('bob'))
        c.connect()
        c.start()
        conns.append(c)
    a = conns[0].request('send_message', conversation_id=cid, content='ws')
    assert a['type'] == 'ack'
    time.sleep(1.2)                              # a tick for the gauges
    after = scrape(metered)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew('ngx_chat_messages_sent_total') == 4
    assert grew('ngx_chat_errors_total', status='404') == 1
    assert grew('ngx_chat_ws_connections_opened_total') == 4
    assert grew('ngx_chat_acks_total') >= 1
    assert grew('ngx_chat_deliveries_total') >= 4
    assert grew('ngx_chat_pg_query_duration_seconds_count') >= 5
    # both workers count into one zone
    assert value(after, 'ngx_chat_ws_connections') == \
        value(before, 'ngx_chat_ws_connections') + 4
    assert value(after, 'ngx_chat_redis_links_up') == 4   # 2 a worker
    for c in conns:
        c.close()
    time.sleep(0.5)
    assert value(scrape(metered), 'ngx_chat_ws_connections') == \
        value(before, 'ngx_chat_ws_connections')
    # no label names a user, a tenant or a conversation
    text = str(after)
    assert tenant.name not in text and 'alice' not in text


def test_counters_survive_a_reload(metered, tenant):
    alice = tenant.client('alice', nginx=metered)
    alice.get('conversations')
    before = value(scrape(metered), 'ngx_chat_rest_requests_total')
    metered.command('-s', 'reload')
    time.sleep(1.5)
    after = value(scrape(metered), 'ngx_chat_rest_requests_total')
    assert after >= before


def test_only_where_allowed(metered, stack):
    # the main nginx has no chat_metrics location
    c = http.client.HTTPConnection('127.0.0.1', stack.main.port, timeout=5)
    c.request('GET', '/metrics')
    assert c.getresponse().status == 404
    c.close()


def test_bytes_wait_for_redis_while_it_is_away(own_stack):
    ng = metered_nginx(own_stack, 'metrics-redis')
    tenant = Tenant(own_stack, ng)
    assert value(scrape(ng), 'ngx_chat_redis_pending_bytes') == 0
    alice = tenant.client('alice')
    cid = alice.create('group', ['bob'])['id']
    own_stack.redis.stop()
    try:
        chatstack.wait_for(
            lambda: value(scrape(ng), 'ngx_chat_redis_links_up') == 0, 10,
            'the Redis links to go down')
        for i in range(5):
            r = alice.post(f'conversations/{cid}/messages',
                           {'content': 'x' * 1000})
            assert r.status == 201, r
        chatstack.wait_for(
            lambda: value(scrape(ng), 'ngx_chat_redis_pending_bytes') >= 5000,
            5, 'the publishes to wait for Redis')
    finally:
        own_stack.redis.start()
    chatstack.wait_for(
        lambda: value(scrape(ng), 'ngx_chat_redis_pending_bytes') == 0, 20,
        'the waiting publishes to go to Redis')
