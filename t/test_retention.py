"""Events are kept for chat_events_retention, not for ever (docs/api.md,
"Resume and retention").

A resume from a position older than what is kept is answered, for that
conversation, with `reload` (the client loads it from history) and
delivery goes on from where the conversation stands; a resume within what
is kept replays as always.  A worker's channel whose gap falls past the
retention does the same for its live followers.  The module deletes old
events itself, in batches, when the directive is set.
"""

import time

import pytest

from wsclient import ChatWS


def group_with_messages(tenant, n):
    alice = tenant.client('alice')
    cid = alice.create('group', ['bob'])['id']
    for i in range(n):
        r = alice.post(f'conversations/{cid}/messages', {'content': f'm{i}'})
        assert r.status == 201, r
    return alice, cid


def age(stack, cid, up_to_seq, days=40):
    stack.query("UPDATE chat.events SET created_at = now() - %s * "
                "interval '1 day' WHERE conversation_id = %s AND seq <= %s",
                (days, cid, up_to_seq))


def seqs_kept(stack, cid):
    return [r[0] for r in stack.query(
        'SELECT seq FROM chat.events WHERE conversation_id = %s ORDER BY seq',
        (cid,))]


def test_resume_from_before_what_is_kept_says_reload(stack, tenant):
    alice, cid = group_with_messages(tenant, 5)
    age(stack, cid, 4)
    stack.query("SELECT chat.events_prune(interval '30 days', 1000)")
    assert seqs_kept(stack, cid) == [5]

    bob = ChatWS(stack.main.port, tenant.token('bob'))
    bob.connect()
    m = bob.request('resume', conversations={str(cid): 1})
    assert m['type'] == 'resumed', m
    reloads = bob.of_type('reload')
    assert reloads == [{'type': 'reload', 'conversation_id': cid,
                        'last_seq': 5}], bob.log
    # nothing of what was pruned is replayed, and live delivery goes on
    assert bob.events(cid) == []
    alice.post(f'conversations/{cid}/messages', {'content': 'live'})
    ev = bob.wait(lambda e: e.get('type') == 'new_message')
    assert ev['seq'] == 6 and ev['message']['content'] == 'live', ev
    bob.sock.close()


def test_resume_within_what_is_kept_replays_as_always(stack, tenant):
    alice, cid = group_with_messages(tenant, 5)
    age(stack, cid, 3)
    stack.query("SELECT chat.events_prune(interval '30 days', 1000)")
    assert seqs_kept(stack, cid) == [4, 5]

    bob = ChatWS(stack.main.port, tenant.token('bob'))
    bob.connect()
    assert bob.request('resume', conversations={str(cid): 3})['type'] == \
        'resumed'
    assert bob.seqs(cid) == [4, 5]
    assert bob.of_type('reload') == []
    bob.sock.close()


def test_a_live_channel_whose_gap_is_past_retention_reloads(stack, tenant):
    alice, cid = group_with_messages(tenant, 1)
    bob = ChatWS(stack.main.port, tenant.token('bob'))
    bob.connect()
    bob.start()
    # the worker's channel is live once a message comes through it, and
    # the read of Postgres that follows its subscription (chat_ws_gap_wait
    # after it, 100 ms) is over a moment later
    alice.post(f'conversations/{cid}/messages', {'content': 'live'})
    bob.wait(lambda e: e.get('type') == 'new_message' and e['seq'] == 2)
    time.sleep(0.5)

    # events 3 and 4 were written while no worker heard them (as if Redis
    # had lost them), long ago; the pruning keeps only the newest (and
    # what is kept is one unbroken run: 1 and 2 go with them)
    stack.query(
        "INSERT INTO chat.events (conversation_id, seq, type, payload, "
        "created_at) SELECT %s, s, 'conversation_updated', "
        "'{\"type\":\"conversation_updated\"}', now() - interval '40 days' "
        "FROM generate_series(3, 4) s", (cid,))
    stack.query('UPDATE chat.conversations SET last_seq = 4 WHERE id = %s',
                (cid,))
    stack.query("SELECT chat.events_prune(interval '30 days', 1000)")
    assert seqs_kept(stack, cid) == [4]

    # seq 5 comes from Redis: 3 is missing and no longer kept
    alice.post(f'conversations/{cid}/messages', {'content': 'after'})
    ev = bob.wait(lambda e: e.get('type') == 'reload', timeout=10)
    assert ev == {'type': 'reload', 'conversation_id': cid,
                  'last_seq': 5}, ev
    # delivery goes on after it
    alice.post(f'conversations/{cid}/messages', {'content': 'next'})
    ev = bob.wait(lambda e: e.get('type') == 'new_message')
    assert ev['seq'] == 6, ev
    bob.sock.close()


def test_the_module_deletes_events_past_retention(stack, tenant):
    ng = stack.nginx(name='retention', EXTRA='chat_events_retention 1h;')
    try:
        alice = tenant.client('alice', nginx=ng)
        cid = alice.create('group', ['bob'])['id']
        for i in range(3):
            assert alice.post(f'conversations/{cid}/messages',
                              {'content': 'x'}).status == 201
        stack.query("UPDATE chat.events SET created_at = now() - "
                    "interval '2 hours' WHERE conversation_id = %s", (cid,))
        deadline = time.monotonic() + 90
        while seqs_kept(stack, cid) != [3]:
            assert time.monotonic() < deadline, seqs_kept(stack, cid)
            time.sleep(0.2)
        # a message written since stays
        assert alice.post(f'conversations/{cid}/messages',
                          {'content': 'new'}).status == 201
        assert seqs_kept(stack, cid) == [3, 4]
    finally:
        ng.stop()


@pytest.mark.parametrize('value, words', [
    ('10m', 'at least 1h'),
    ('soon', 'at least 1h'),
])
def test_nginx_t_refuses_a_bad_retention(check_config, value, words):
    out = check_config(EXTRA=f'chat_events_retention {value};')
    text = out.stderr + out.stdout
    assert out.returncode != 0, text
    assert 'chat_events_retention' in text and words in text, text


def test_nginx_t_takes_off_and_days(check_config):
    for value in ('off', '30d', '1h'):
        out = check_config(EXTRA=f'chat_events_retention {value};')
        assert out.returncode == 0, out.stderr
