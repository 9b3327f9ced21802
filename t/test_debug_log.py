"""The state changes of every layer can be traced with `error_log ...
debug` (Debian's nginx is built --with-debug, and so is the module).

An nginx of the shared stack logs at debug level while a client connects,
talks and leaves; the log has each layer's lines, and the run's check of
every error log (conftest.py) finds no sanitizer report in them.
"""

import re
import time

from wsclient import ChatWS


def test_debug_log_traces_each_layer(stack, tenant):
    ng = stack.nginx(name='debug', LOG_LEVEL='debug')
    try:
        alice = tenant.client('alice', nginx=ng)
        cid = alice.create('group', ['bob'])['id']

        bob = ChatWS(ng.port, tenant.token('bob'))
        bob.connect()
        bob.start()
        assert alice.post(f'conversations/{cid}/messages',
                          {'content': 'traced'}).status == 201
        bob.wait(lambda m: m.get('type') == 'new_message')
        assert bob.request('ping')['type'] == 'pong'
        bob.close()

        lines = (r'chat pg: connection \d+ ready',
                     r'chat pg: query "chat_message_send" runs',
                     r'chat redis: (publishing|subscribing) link up',
                     r'chat fanout: subscribing to \d+ topics',
                     r'chat fanout: "bob" follows c:%d from 0' % cid,
                     r'chat ws: upgraded',
                     r'chat ws: connection taken over',
                     r'chat session: "bob" of "%s" opens' % tenant.name,
                     r'chat session: delivery starts, 1 conversations',
                     r'chat ws: the client closed with 1000',
                     r'chat session: "bob" closes')
        # the last of them come once the server has seen the close
        deadline = time.monotonic() + 10
        while True:
            log = ng.log_text()
            missing = [x for x in lines if not re.search(x, log)]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert missing == []
    finally:
        ng.stop()
