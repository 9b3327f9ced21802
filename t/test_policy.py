"""Who may start a conversation with whom (chat_policy), and a
conversation's own cap of members (max_members).

The site's rule here: a regular user may write only to admins; an admin
(roles claim) writes to anyone.  It is a Postgres function of the test's
own schema, called by the module inside the creating transaction with the
claims chat_policy keeps; it also records what it was given, so that the
test sees the claims it got and no others.
"""

import pytest

from chatclient import expect_error

POLICY = """
CREATE SCHEMA IF NOT EXISTS site;
CREATE TABLE IF NOT EXISTS site.admins (tenant text, id text);
CREATE TABLE IF NOT EXISTS site.asked (tenant text, caller text,
                                       targets text[], claims jsonb);
CREATE OR REPLACE FUNCTION site.may_start(p_tenant text, p_caller text,
                                          p_targets text[], p_claims jsonb)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO site.asked VALUES (p_tenant, p_caller, p_targets, p_claims);
    IF coalesce(p_claims->'roles', '[]') ? 'admin' THEN
        RETURN NULL;
    END IF;
    IF (SELECT count(*) FROM site.admins a
         WHERE a.tenant = p_tenant AND a.id = ANY (p_targets))
       = cardinality(p_targets) THEN
        RETURN NULL;
    END IF;
    RETURN 'you may write only to the admins of your communities';
END
$$;
"""


@pytest.fixture(scope='module')
def ruled(stack):
    stack.query(POLICY)
    ng = stack.nginx(name='policy', EXTRA=(
        'chat_policy site.may_start claims=roles,plan;'))
    yield ng
    ng.stop()
    stack.query('DROP SCHEMA site CASCADE')


def asked(stack, tenant):
    return stack.query('SELECT caller, targets, claims FROM site.asked '
                       'WHERE tenant = %s', (tenant.name,))


def test_a_regular_user_writes_only_to_admins(ruled, stack, tenant):
    stack.query('INSERT INTO site.admins VALUES (%s, %s)',
                (tenant.name, 'mod'))
    alice = tenant.client('alice', nginx=ruled, roles=['user'],
                          email='alice@example.com')
    r = alice.post('conversations', {'type': 'direct',
                                     'member_ids': ['bob']})
    expect_error(r, 403, 'only to the admins of your communities')
    expect_error(alice.post('conversations/direct', {'user_id': 'bob'}),
                 403, 'admins')
    expect_error(alice.post('conversations', {'type': 'group', 'member_ids':
                                             ['mod', 'bob']}), 403, 'admins')
    assert alice.post('conversations/direct',
                      {'user_id': 'mod'}).status == 201
    # the function got the claims chat_policy keeps, and only them
    (caller, targets, claims), = [a for a in asked(stack, tenant)
                                  if a[1] == ['mod']]
    assert caller == 'alice' and claims == {'roles': ['user']}
    # nothing was made of what it refused
    assert [c['type'] for c in
            alice.get('conversations').json['items']] == ['direct']


def test_an_admin_writes_to_anyone_and_adds_anyone(ruled, tenant):
    boss = tenant.client('boss', nginx=ruled, roles=['admin'])
    cid = boss.post('conversations', {'type': 'group', 'title': 'team',
                                      'member_ids': ['bob']}).json['id']
    assert boss.post(f'conversations/{cid}/members',
                     {'user_ids': ['carol']}).status == 200
    # a regular owner of a group cannot add a regular user to it
    alice = tenant.client('alice', nginx=ruled)
    gid = alice.post('conversations', {'type': 'group',
                                       'title': 'alone'}).json['id']
    expect_error(alice.post(f'conversations/{gid}/members',
                            {'user_ids': ['bob']}), 403, 'admins')
    # over WebSocket-free REST as over any: the main nginx has no policy
    plain = tenant.client('alice')
    assert plain.post('conversations/direct',
                      {'user_id': 'bob'}).status in (200, 201)


@pytest.mark.parametrize('args, fault', [
    ('Site.may_start', 'lower-case'),
    ('site.may.start', 'lower-case'),
    ('site.may-start', 'lower-case'),
    ('1site.x', 'lower-case'),
    ('site.may_start roles', 'claims='),
    ('site.may_start claims=', 'claims='),
    ('site.may_start claims=a,,b', 'empty name'),
])
def test_bad_policy_directives_are_refused_by_nginx_t(check_config, args,
                                                      fault):
    out = check_config(EXTRA=f'chat_policy {args};')
    assert out.returncode != 0
    assert fault in out.stderr, out.stderr


def test_a_conversation_caps_its_members(tenant):
    alice = tenant.client('alice')
    r = alice.post('conversations', {'type': 'group', 'title': 'small',
                                     'member_ids': ['bob'],
                                     'max_members': 3})
    assert r.status == 201 and r.json['max_members'] == 3, r
    cid = r.json['id']
    assert alice.post(f'conversations/{cid}/members',
                      {'user_ids': ['carol']}).status == 200
    r = alice.post(f'conversations/{cid}/members', {'user_ids': ['dave']})
    assert r.status == 409 and r.json['error']['code'] == 'limit_reached', r
    assert 'max_members' in r.json['error']['message']
    assert alice.get(f'conversations/{cid}').json['member_count'] == 3
    # without one, chat_max members alone
    r = alice.post('conversations', {'type': 'group', 'title': 'open'})
    assert r.json['max_members'] is None


@pytest.mark.parametrize('body, status, words', [
    ({'type': 'group', 'max_members': 1}, 400, 'at least 2'),
    ({'type': 'group', 'max_members': 2, 'member_ids': ['b', 'c']}, 400,
     'at least 2'),
    ({'type': 'group', 'max_members': 10001}, 409, 'chat_max members'),
    ({'type': 'channel', 'max_members': 0}, 400, 'max_members'),
    ({'type': 'group', 'max_members': 'ten'}, 400, 'max_members'),
    ({'type': 'direct', 'member_ids': ['bob'], 'max_members': 2}, 400,
     'two members'),
])
def test_bad_max_members_are_refused(tenant, body, status, words):
    r = tenant.client('alice').post('conversations', body)
    assert r.status == status, r
    assert r.json['error']['code'] == ('limit_reached' if status == 409
                                       else 'bad_request'), r
    assert words in r.json['error']['message'], r
