// Which of our child processes dialed a loopback TCP connection: the kernel knows (Linux: the socket's
// inode in /proc/net/tcp, and the process whose /proc/<pid>/fd links to it). The cluster harness uses it
// to attribute real etcd's peer connections, which carry no Plinth handshake, to the member that opened
// them, so that one member can be isolated although its outgoing links run through the other members'
// proxies.
import { readFile, readdir, readlink } from 'node:fs/promises';

/** True where /proc exposes sockets and their owners (Linux). */
export const SOCKET_OWNERS_KNOWN = process.platform === 'linux';

/**
 * The pid, among `pids`, owning the socket whose local port is `dialerPort` and which is connected to
 * `dialedPort` (both on this host); undefined when none of them does (or the socket is already gone).
 */
export async function socketOwner(dialerPort: number, dialedPort: number, pids: readonly number[]): Promise<number | undefined> {
  if (!SOCKET_OWNERS_KNOWN) return undefined;
  const inode = await socketInode(dialerPort, dialedPort);
  if (inode === undefined) return undefined;
  const link = `socket:[${inode}]`;
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = await readdir(`/proc/${pid}/fd`);
    } catch {
      continue; // exited meanwhile
    }
    for (const fd of fds) {
      try {
        if ((await readlink(`/proc/${pid}/fd/${fd}`)) === link) return pid;
      } catch {
        // closed meanwhile
      }
    }
  }
  return undefined;
}

async function socketInode(localPort: number, remotePort: number): Promise<string | undefined> {
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue;
    }
    // "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      if (portOf(f[1]) === localPort && portOf(f[2]) === remotePort && f[9] !== '0') return f[9];
    }
  }
  return undefined;
}

function portOf(hexAddr: string): number {
  return parseInt(hexAddr.slice(hexAddr.lastIndexOf(':') + 1), 16);
}
