#!/usr/bin/python3
# One session of Debian's python3-etcd3 (gRPC) with auth on, against the server at 127.0.0.1:<port> over TLS
# (<ca file>: grpcio sends call credentials, the token, only over a secure channel): users alice (readwrite
# a/, read r/) and root exist and auth is enabled by the caller. Prints one JSON
# list of what each step gave (a value, or the exception's class and words), for the test to compare
# between real etcd 3.4 and Plinth.
import json
import sys

import etcd3

port = int(sys.argv[1])
ca = sys.argv[2]
steps = []


def step(name, fn):
    try:
        steps.append([name, 'ok', fn()])
    except Exception as e:  # the class and words are what the test compares
        details = getattr(e, 'details', None)
        steps.append([name, type(e).__name__, details() if callable(details) else str(e)])


def value(r):
    v, meta = r
    return None if v is None else v.decode()


def connect(user=None, password=None):
    return etcd3.client('127.0.0.1', port, ca_cert=ca, user=user, password=password, timeout=5)


alice = connect('alice', 'apw')
step('alice put a/1', lambda: alice.put('a/1', 'v') and None)
step('alice get a/1', lambda: value(alice.get('a/1')))
step('alice get r/1', lambda: value(alice.get('r/1')))
step('alice put r/1', lambda: alice.put('r/1', 'w') and None)
step('alice get secret', lambda: value(alice.get('secret')))
step('alice prefix a/', lambda: [(v.decode(), m.key.decode()) for v, m in alice.get_prefix('a/')])
step('alice delete secret', lambda: alice.delete('secret'))
step('alice delete prefix r/', lambda: alice.delete_prefix('r/') and None)
step('alice txn within', lambda: alice.transaction(compare=[alice.transactions.version('r/1') > 0],
                                                   success=[alice.transactions.put('a/2', 't')], failure=[])[0])
step('alice txn touching secret', lambda: alice.transaction(compare=[], success=[alice.transactions.put('a/3', 't'),
                                                                                 alice.transactions.put('secret', 't')], failure=[])[0])
step('alice get a/3 (the refused txn did nothing)', lambda: value(alice.get('a/3')))
step('alice lease with a/l', lambda: alice.put('a/l', 'v', lease=alice.lease(60)) and None)
alice.close()

step('no user get a/1', lambda: value(connect().get('a/1')))
step('wrong password', lambda: value(connect('alice', 'bad').get('a/1')))
step('unknown user', lambda: value(connect('nobody', 'x').get('a/1')))

root = connect('root', 'rootpw')
step('root get secret', lambda: value(root.get('secret')))
step('root get a/2', lambda: value(root.get('a/2')))
root.close()

print(json.dumps(steps))
