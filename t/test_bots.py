"""Bots (docs/api.md, Bots): a user whose token says "bot": true.  Its
messages are marked; a conversation of type "bot" is one user and one bot;
every message of a conversation with a bot goes to the webhook for the
bot (reason "bot", with the whole content), connected or not; the bot
answers through the REST API as anyone does.

The receiver is t/test_webhooks.py's.  A file of its own: every nginx with
a webhook claims from the one outbox.
"""

import time

import pytest

from chatclient import expect_error
from test_webhooks import SECRET, Receiver
from wsclient import ChatWS


@pytest.fixture(scope='module')
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(scope='module')
def hooked(stack, receiver):
    return stack.nginx(name='bots', EXTRA=(
        f'chat_webhook http://127.0.0.1:{receiver.port}/hooks/chat '
        f'secret={SECRET} window=1s timeout=2s max_age=1h;'))


def bot(tenant, nginx, name='assistant'):
    return tenant.client(name, nginx=nginx, bot=True)


def bot_items(receiver, tenant, user):
    return [i for bodies in receiver.delivered(user, tenant.name).values()
            for i in bodies[0]['items']]


def test_a_bots_messages_are_marked(hooked, tenant):
    alice = tenant.client('alice', nginx=hooked)
    helper = bot(tenant, hooked)
    cid = alice.create('group', ['assistant'])['id']
    mine = alice.post(f'conversations/{cid}/messages', {'content': 'hi'})
    theirs = helper.post(f'conversations/{cid}/messages', {'content': 'ho'})
    assert mine.status == theirs.status == 201
    assert mine.json['bot'] is False and theirs.json['bot'] is True
    items = alice.get(f'conversations/{cid}/messages').json['items']
    assert {m['content']: m['bot'] for m in items} == {'hi': False,
                                                       'ho': True}
    # the same user with a token that is not a bot's is not one any more
    again = tenant.client('assistant', nginx=hooked)
    r = again.post(f'conversations/{cid}/messages', {'content': 'me'})
    assert r.json['bot'] is False


def test_a_bot_conversation_is_one_user_and_one_bot(hooked, tenant):
    alice = tenant.client('alice', nginx=hooked)
    # a bot is known once it has acted with its token
    assert bot(tenant, hooked).get('conversations').status == 200
    # GET is not an action: the first write makes it one
    bot(tenant, hooked).put('presence/me', {'status': 'online'})
    r = alice.post('conversations', {'type': 'bot',
                                     'member_ids': ['assistant'],
                                     'title': 'Ask me'})
    assert r.status == 201, r
    assert r.json['type'] == 'bot' and r.json['member_count'] == 2
    # a second room with the same bot is another conversation
    r2 = alice.post('conversations', {'type': 'bot',
                                      'member_ids': ['assistant']})
    assert r2.status == 201 and r2.json['id'] != r.json['id']
    for members in (['bob'], ['assistant', 'bob'], []):
        expect_error(alice.post('conversations', {
            'type': 'bot', 'member_ids': members}), 400, 'one bot')
    # two bots are not a bot conversation either
    bot(tenant, hooked, 'other-bot').put('presence/me', {'status': 'online'})
    expect_error(bot(tenant, hooked).post('conversations', {
        'type': 'bot', 'member_ids': ['other-bot']}), 400, 'one bot')


def test_every_message_goes_to_the_bot_whole_and_it_answers(hooked,
                                                            receiver,
                                                            tenant):
    alice = tenant.client('alice', nginx=hooked)
    helper = bot(tenant, hooked)
    helper.put('presence/me', {'status': 'online'})
    cid = alice.post('conversations', {'type': 'bot',
                                       'member_ids': ['assistant']}).json['id']
    # the bot is connected: it hears through the webhook all the same
    c = ChatWS(hooked.port, tenant.token('assistant', bot=True))
    c.connect()
    c.start()
    try:
        question = 'What is ' + 'very ' * 60 + 'long?'
        mid = alice.post(f'conversations/{cid}/messages',
                         {'content': question}).json['id']
        receiver.wait(lambda: bot_items(receiver, tenant, 'assistant'))
    finally:
        c.close()
    (item,) = bot_items(receiver, tenant, 'assistant')
    assert (item['reason'], item['conversation_id'], item['message_id'],
            item['sender_id'], item['content'], item['conversation_type']) \
        == ('bot', cid, mid, 'alice', question, 'bot')
    assert item['preview'] == question[:140]

    # the answer goes to alice as a direct message would, not to the bot
    r = helper.post(f'conversations/{cid}/messages', {'content': 'Very.',
                                                      'reply_to': mid})
    assert r.status == 201 and r.json['bot'] is True
    receiver.wait(lambda: receiver.delivered('alice', tenant.name))
    (alices,) = [i for b in receiver.delivered('alice', tenant.name)
                 .values() for i in b[0]['items']]
    assert alices['reason'] in ('direct', 'reply')
    assert 'content' not in alices          # a preview for people
    time.sleep(1.5)
    assert len(bot_items(receiver, tenant, 'assistant')) == 1
    assert not receiver.bad


def test_bots_in_a_group_hear_people_not_each_other(hooked, receiver,
                                                    tenant):
    alice = tenant.client('alice', nginx=hooked)
    one, two = bot(tenant, hooked, 'bot-one'), bot(tenant, hooked, 'bot-two')
    for b in (one, two):
        b.put('presence/me', {'status': 'online'})
    cid = alice.create('group', ['bot-one', 'bot-two', 'bob'])['id']
    one.post(f'conversations/{cid}/messages', {'content': 'from one'})
    alice.post(f'conversations/{cid}/messages', {'content': 'from alice'})
    receiver.wait(lambda: bot_items(receiver, tenant, 'bot-two')
                  and bot_items(receiver, tenant, 'bot-one'))
    time.sleep(1.5)
    assert [i['content'] for i in bot_items(receiver, tenant, 'bot-two')] \
        == ['from alice']
    assert [i['content'] for i in bot_items(receiver, tenant, 'bot-one')] \
        == ['from alice']
    # bob, away and not mentioned, hears nothing of a group
    assert not receiver.delivered('bob', tenant.name)


@pytest.mark.parametrize('claim', ['yes', 1, [], {}, 'true'])
def test_a_bot_claim_that_is_not_a_boolean_is_refused(hooked, tenant, claim):
    token = tenant.stack.tokens.make('assistant', tenant=tenant.name,
                                     bot=claim)
    r = tenant.anonymous(nginx=hooked).get(
        'conversations', headers={'Authorization': f'Bearer {token}'})
    expect_error(r, 401)
    assert r.json['error']['reason'] == 'invalid_claim', r
    # false is a person's token
    token = tenant.stack.tokens.make('assistant', tenant=tenant.name,
                                     bot=False)
    assert tenant.anonymous(nginx=hooked).get(
        'conversations',
        headers={'Authorization': f'Bearer {token}'}).status == 200
