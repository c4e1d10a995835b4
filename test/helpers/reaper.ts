// A safety net for the processes and temp dirs a test starts: a tiny watchdog process, told over its
// stdin which PIDs and dirs are live, that SIGKILLs and removes whatever is still listed when its stdin
// closes, i.e. when the test process ends, however it ends. (An 'exit' handler alone does not run when
// the test worker is killed by a signal, and a SIGSTOPped server would then outlive the test.)
import { spawn, type ChildProcess } from 'node:child_process';

const WATCHDOG = `
const fs = require('fs');
const pids = new Set(), dirs = new Set();
let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  for (let i; (i = buf.indexOf('\\n')) >= 0; ) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    const sp = line.indexOf(' ');
    const cmd = line.slice(0, sp), arg = line.slice(sp + 1);
    if (cmd === 'pid') pids.add(Number(arg));
    else if (cmd === 'unpid') pids.delete(Number(arg));
    else if (cmd === 'dir') dirs.add(arg);
    else if (cmd === 'undir') dirs.delete(arg);
  }
});
process.stdin.on('end', () => {
  for (const p of pids) { try { process.kill(p, 'SIGKILL'); } catch {} }
  for (const d of dirs) { try { fs.rmSync(d, { recursive: true, force: true }); } catch {} }
  process.exit(0);
});
process.on('SIGINT', () => {});
`;

let watchdog: ChildProcess | undefined;

function tell(line: string): void {
  if (!watchdog) {
    watchdog = spawn(process.execPath, ['-e', WATCHDOG], { stdio: ['pipe', 'ignore', 'ignore'] });
    watchdog.on('error', () => undefined);
    watchdog.stdin!.on('error', () => undefined);
    // It must not keep the test process alive.
    watchdog.unref();
    (watchdog.stdin as unknown as { unref(): void }).unref();
  }
  watchdog.stdin!.write(line + '\n');
}

/** Kill `pid` when the test process ends, unless forgotten first (call forgetPid once it exited). */
export function reapPid(pid: number): void {
  tell(`pid ${pid}`);
}
export function forgetPid(pid: number): void {
  tell(`unpid ${pid}`);
}
/** Remove `dir` (recursively) when the test process ends, unless forgotten first. */
export function reapDir(dir: string): void {
  if (dir.includes('\n')) throw new Error('reapDir: a newline in a path');
  tell(`dir ${dir}`);
}
export function forgetDir(dir: string): void {
  tell(`undir ${dir}`);
}
