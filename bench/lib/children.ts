import { ChildProcess, spawn, SpawnOptions } from 'node:child_process';
import { groupRunning } from './proc-stats';

/**
 * Every process the benchmarks start, each as the leader of its own process group, so that
 * killing the group also kills what it forked (cluster workers). All of them are killed when
 * the runner exits, however it exits.
 */
const running = new Set<ChildProcess>();

export function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) {
    return;
  }
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: the whole group is gone already.
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function spawnTracked(command: string, args: string[], options: SpawnOptions): ChildProcess {
  const child = spawn(command, args, { ...options, detached: true });
  running.add(child);
  child.once('exit', () => {
    // The leader is gone; its workers may not be: the group is killed in stopGroup/cleanup.
    if (child.pid === undefined || !groupRunning(child.pid)) {
      running.delete(child);
    }
  });
  return child;
}

/** SIGTERM to the leader, SIGKILL to the whole group after `graceMs`; resolves when none is left. */
export async function stopGroup(child: ChildProcess, graceMs = 2_000): Promise<void> {
  const pgid = child.pid;
  if (pgid === undefined) {
    running.delete(child);
    return;
  }
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
  }
  const deadline = Date.now() + graceMs;
  while (groupRunning(pgid) && Date.now() < deadline) {
    await sleep(20);
  }
  killGroup(child, 'SIGKILL');
  while (groupRunning(pgid)) {
    await sleep(10);
  }
  running.delete(child);
}

function killAll(): void {
  for (const child of running) {
    killGroup(child, 'SIGKILL');
  }
  running.clear();
}

/** Kills every tracked process on exit, on Ctrl-C / SIGTERM / SIGHUP and on a crash. */
export function installCleanup(): void {
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      process.stderr.write(`\n${signal}: stopping every benchmark process\n`);
      killAll();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (error) => {
    process.stderr.write(`${error.stack ?? String(error)}\n`);
    killAll();
    process.exit(1);
  });
}

export interface ScriptOutcome<T> {
  result: T;
  /** Wall-clock seconds. */
  seconds: number;
}

/**
 * Runs a compiled bench script in its own node process and returns what it printed as the
 * last line of stdout, parsed as JSON. stderr is passed through for progress lines.
 */
export async function runNodeScript<T>(
  script: string,
  args: string[],
  nodeArgs: string[] = [],
  timeoutMs = 300_000,
): Promise<ScriptOutcome<T>> {
  const started = Date.now();
  const child = spawnTracked(process.execPath, [...nodeArgs, script, ...args], {
    env: { PATH: process.env.PATH },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearTimeout(timer);
  await stopGroup(child, 0);
  const last = stdout.trim().split('\n').pop() ?? '';
  if (code !== 0 || !last.startsWith('{')) {
    throw new Error(`${script} ${args.join(' ')} failed (exit ${code}):\n${stderr}${stdout}`);
  }
  return { result: JSON.parse(last) as T, seconds: (Date.now() - started) / 1000 };
}
