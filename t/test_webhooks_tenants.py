"""A webhook per tenant (chat_webhook ... tenant=T): a tenant's
notifications go to its own receiver, signed with its own secret; the
others' to the webhook without tenant=, or nowhere when there is none.

A file of its own: every nginx with a webhook claims from the one outbox.
"""

import base64
import os
import time

import pytest

import chatstack
import test_webhooks
from conftest import Tenant


def receiver_with(key):
    """t/test_webhooks.py's receiver, checking signatures with key."""
    r = test_webhooks.Receiver()
    take = r.take

    def take_with_key(h, body):
        saved = test_webhooks.KEY
        test_webhooks.KEY = key
        try:
            take(h, body)
        finally:
            test_webhooks.KEY = saved
    r.take = take_with_key
    return r


def secret(key):
    return 'whsec_' + base64.b64encode(key).decode()


@pytest.fixture(scope='module')
def keys():
    return os.urandom(32), os.urandom(32)


@pytest.fixture(scope='module')
def receivers(keys):
    rs = [receiver_with(k) for k in keys]
    yield rs
    for r in rs:
        r.stop()


def direct(t, text):
    alice = t.client('alice')
    cid = alice.post('conversations', dict(type='direct',
                                           member_ids=['bob'])).json['id']
    assert alice.post(f'conversations/{cid}/messages',
                      {'content': text}).status == 201


def test_each_tenant_hears_through_its_own_webhook(stack, keys, receivers):
    own, rest = receivers
    name = 'acme-' + os.urandom(4).hex()
    ng = stack.nginx(name='tenant-hooks', EXTRA=(
        f'chat_webhook http://127.0.0.1:{own.port}/acme '
        f'secret={secret(keys[0])} tenant={name} window=1s; '
        f'chat_webhook http://127.0.0.1:{rest.port}/all '
        f'secret={secret(keys[1])} window=1s;'))
    try:
        acme, other = Tenant(stack, ng, name), Tenant(stack, ng)
        direct(acme, 'for acme')
        direct(other, 'for the rest')
        own.wait(lambda: own.delivered('bob', name))
        rest.wait(lambda: rest.delivered('bob', other.name))
        time.sleep(1.5)
        assert not own.delivered('bob', other.name)
        assert not rest.delivered('bob', name)
        # each signed with its own secret: none failed its check
        assert not own.bad and not rest.bad
    finally:
        ng.stop()


def test_without_a_webhook_for_the_rest_theirs_go_nowhere(stack, keys,
                                                          receivers):
    own, _ = receivers
    name = 'solo-' + os.urandom(4).hex()
    ng = stack.nginx(name='tenant-hook-only', EXTRA=(
        f'chat_webhook http://127.0.0.1:{own.port}/solo '
        f'secret={secret(keys[0])} tenant={name} window=1s;'))
    try:
        other = Tenant(stack, ng)
        direct(other, 'unheard')
        direct(Tenant(stack, ng, name), 'heard')
        own.wait(lambda: own.delivered('bob', name))
        chatstack.wait_for(lambda: stack.query(
            'SELECT count(*) FROM chat.outbox WHERE tenant_id = %s',
            (other.name,))[0][0] == 0, 10, "the other's rows to go")
        assert not own.delivered('bob', other.name)
    finally:
        ng.stop()


@pytest.mark.parametrize('extra, fault', [
    ('chat_webhook http://127.0.0.1:9/ secret={s} tenant=a; '
     'chat_webhook http://127.0.0.1:9/ secret={s} tenant=a;', 'tenant "a"'),
    ('chat_webhook http://127.0.0.1:9/ secret={s} tenant=;', 'tenant='),
    ('chat_webhook http://127.0.0.1:9/ secret={s}; '
     'chat_webhook http://127.0.0.1:9/ secret={s};', 'duplicate'),
])
def test_bad_tenant_webhooks_are_refused_by_nginx_t(check_config, extra,
                                                    fault):
    out = check_config(EXTRA=extra.format(s='k' * 32))
    assert out.returncode != 0
    assert fault in out.stderr, out.stderr
