# Drives a server through Debian's python3-etcd3gw client (the grpc-gateway JSON API) and prints one
# JSON line per step, for the comparison in etcd3gw.test.ts. Usage: etcd3gw-session.py PORT
import json
import sys
import threading

from etcd3gw.client import Etcd3Client

port = int(sys.argv[1])
c = Etcd3Client(host='127.0.0.1', port=port, api_path='/v3/', timeout=5)
out = []


def step(name, fn):
    print(name, file=sys.stderr, flush=True)
    try:
        out.append({'step': name, 'ok': fn()})
    except Exception as e:  # the client's exception class and the server's words
        out.append({'step': name, 'error': type(e).__name__, 'detail': str(e)})


def meta(items):
    return [[v.decode() if isinstance(v, bytes) else v,
             {k: m[k] for k in ('key', 'create_revision', 'mod_revision', 'version') if k in m}]
            for v, m in items]


step('put', lambda: c.put('foo', 'bar'))
step('get', lambda: c.get('foo'))
step('get metadata', lambda: meta(c.get('foo', metadata=True)))
step('create existing', lambda: c.create('foo', 'x'))
step('create new', lambda: c.create('new', 'x'))
step('replace ok', lambda: c.replace('foo', 'bar', 'baz'))
step('replace stale', lambda: c.replace('foo', 'bar', 'qux'))
for i in range(3):
    step('put prefix %d' % i, lambda i=i: c.put('pre/%d' % i, 'v%d' % i))
step('get prefix', lambda: meta(c.get_prefix('pre/')))
step('get prefix descending', lambda: meta(c.get_prefix('pre/', sort_order='descend', sort_target='key')))
step('get all', lambda: [v.decode() for v, _ in c.get_all()])
step('delete', lambda: c.delete('foo'))
step('delete missing', lambda: c.delete('foo'))
step('delete prefix', lambda: c.delete_prefix('pre/'))
step('status keys', lambda: sorted(c.status().keys()))
step('members', lambda: [m['name'] for m in c.members()])

lease = None


def grant():
    global lease
    lease = c.lease(ttl=60)
    return lease.ttl() > 50


step('lease grant', grant)
step('put with lease', lambda: c.put('leased', 'v', lease=lease))
step('lease keys', lambda: [k.decode() for k in lease.keys()])
step('lease refresh', lambda: lease.refresh() > 50)
step('lease revoke', lambda: lease.revoke())
step('leased key gone', lambda: c.get('leased'))

events = []


def watch():
    it, cancel = c.watch('w')
    got = threading.Event()

    def consume():
        for ev in it:
            events.append({k: ev[k] for k in ('type',) if k in ev} | {'kv': {k: ev['kv'].get(k) for k in ('key', 'value', 'version')}})
            if len(events) == 2:
                got.set()
                break

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    threading.Event().wait(0.5)
    c.put('w', '1')
    c.delete('w')
    got.wait(5)
    cancel()
    return events


step('watch', watch)
print(json.dumps(out, sort_keys=True, default=lambda b: b.decode() if isinstance(b, bytes) else repr(b)))
