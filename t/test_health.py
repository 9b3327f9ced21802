"""The health route reports the Postgres pool of the worker that answers."""


def test_health_reports_a_ready_pool(tenant):
    r = tenant.anonymous().get('health')
    assert r.status == 200, r
    pg = r.json['postgres']
    assert r.json['status'] == 'ok'
    assert pg['connections'] == 4 and pg['ready'] >= 1
