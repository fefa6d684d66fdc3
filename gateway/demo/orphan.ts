/**
 * The demo stops when the process that started it goes away.
 *
 * `npm start` runs `sh -c "node bin/switchyard.mjs demo"`. `kill -TERM <npm>` made npm pass
 * the signal to that shell, which died of it without passing it on (dash does not hand its
 * last command the shell's pid): node was re-parented, kept listening, and its temporary
 * directory with the keys in plain text stayed. A process that is re-parented was orphaned,
 * whichever way its parent went (a signal, SIGKILL, a crash, a closed terminal).
 *
 * Why watching `process.ppid` (one getppid call every half second, on an unref'd timer that
 * never keeps the process alive) rather than an IPC channel or end of stdin: both of those
 * need the parent's cooperation, and npm gives the script the terminal's stdin and no IPC
 * channel; the parent pid needs nothing and works under any launcher. `exec` in the start
 * script would only cover the shell, not npm itself (nor Windows, which has no `exec`).
 * Only the demo does this: `serve` under a supervisor must not depend on who started it.
 */
export function stopWithParent(parent: number, everyMs = 500): void {
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    // The terminal or pipe the demo wrote to may be gone with its parent: a failed write
    // must not stop the drain (and the removal of the directory) halfway.
    const ignore = (): void => undefined;
    process.stdout.on('error', ignore);
    process.stderr.on('error', ignore);
    process.stderr.write(`switchyard demo: the process that started it (pid ${parent}) is gone; stopping\n`);
    // The same path as SIGTERM: in-flight requests drain, then the directory is removed.
    process.kill(process.pid, 'SIGTERM');
  }, everyMs);
  timer.unref();
}
