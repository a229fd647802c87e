import cluster, { Worker } from 'node:cluster';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { fail, report } from '../scale/heap';
import {
  loadInMemoryRepository,
  loadIpcRepository,
  loadIsShutdownMessage,
  loadStoreHub,
  loadSupervisor,
  Repository,
} from '../lib/server-modules';
import { sleep } from '../lib/stats';

/**
 * The cluster store without HTTP:
 *   node hub-bench.js <measureSeconds> <warmupSeconds> <inFlightPerWorker>
 * This primary runs the real StoreHub over the real InMemoryConversationRepository and forks
 * two workers with the real WorkerSupervisor (so IPC is set up as in the server); each worker
 * keeps `inFlightPerWorker` calls in flight through the real IpcConversationRepository over
 * processPort(). Measured in the primary: operations answered per second and its CPU per op.
 */

const WORKERS = 2;
const APPEND_TARGETS = 1_000;
const READ_TARGETS = 50;
const READ_HISTORY = 20;
const TEXT = 'x'.repeat(100);
const MAX = Number.MAX_SAFE_INTEGER;

type Operation = 'appendMessage' | 'getConversation';

interface RunCommand {
  bench: 'run';
  op: Operation;
  targets: string[];
  inFlight: number;
}

type BenchMessage =
  | RunCommand
  | { bench: 'pause' }
  | { bench: 'ready' }
  | { bench: 'idle'; completed: number; failed: number };

function isBenchMessage(message: unknown): message is BenchMessage {
  return typeof message === 'object' && message !== null && 'bench' in message;
}

function call(repository: Repository, op: Operation, target: string): Promise<unknown> {
  if (op === 'getConversation') {
    return repository.getConversation(target);
  }
  const now = Date.now();
  return repository.appendMessage(target, {
    id: randomUUID(),
    sender: 'customer',
    content: TEXT,
    timestamp: now,
    now,
    maxMessages: MAX,
  });
}

async function worker(): Promise<void> {
  const { IpcConversationRepository, processPort } = await loadIpcRepository();
  const isShutdownMessage = await loadIsShutdownMessage();
  const repository = new IpcConversationRepository(processPort(), 5_000);
  const send = (message: BenchMessage) => process.send?.(message);
  let running = false;
  let lanes: Promise<void>[] = [];
  let completed = 0;
  let failed = 0;

  const lane = async (command: RunCommand, start: number) => {
    for (let i = start; running; i += command.inFlight) {
      try {
        await call(repository, command.op, command.targets[i % command.targets.length]);
        completed++;
      } catch {
        failed++;
      }
    }
  };

  process.on('message', (message: unknown) => {
    if (isShutdownMessage(message)) {
      process.exit(0);
    }
    if (!isBenchMessage(message)) {
      return;
    }
    if (message.bench === 'run') {
      running = true;
      completed = 0;
      failed = 0;
      lanes = Array.from({ length: message.inFlight }, (_, i) => lane(message, i));
    } else if (message.bench === 'pause') {
      running = false;
      void Promise.all(lanes).then(() => send({ bench: 'idle', completed, failed }));
    }
  });
  process.on('disconnect', () => process.exit(1));
  send({ bench: 'ready' });
}

async function primary(): Promise<void> {
  const [measureSeconds, warmupSeconds, inFlight] = process.argv.slice(2).map(Number);
  const Repository = await loadInMemoryRepository();
  const StoreHub = await loadStoreHub();
  const { WorkerSupervisor, sendToWorker } = await loadSupervisor();
  const repository = new Repository();
  const hub = new StoreHub(repository);

  const create = async () =>
    (
      await repository.createConversation({
        id: randomUUID(),
        now: Date.now(),
        maxConversations: MAX,
      })
    ).id;
  const appendTargets: string[] = [];
  for (let i = 0; i < APPEND_TARGETS; i++) {
    appendTargets.push(await create());
  }
  const readTargets: string[] = [];
  for (let i = 0; i < READ_TARGETS; i++) {
    const id = await create();
    for (let m = 0; m < READ_HISTORY; m++) {
      await call(repository, 'appendMessage', id);
    }
    readTargets.push(id);
  }

  let answered = 0;
  let batches = 0;
  const waiting: ((message: BenchMessage) => void)[] = [];
  const workers = new Set<Worker>();
  const supervisor = new WorkerSupervisor<Worker>({
    workers: WORKERS,
    graceMs: 1_000,
    onMessage: (from, message) => {
      if (isBenchMessage(message)) {
        workers.add(from);
        waiting.forEach((listener) => listener(message));
        return;
      }
      hub.handle(message, (batch) => {
        answered += batch.replies.length;
        batches++;
        sendToWorker(from, batch);
      });
    },
    onCrashLoop: (reason) => fail(new Error(reason)),
  });
  const allSay = (kind: BenchMessage['bench']) =>
    new Promise<BenchMessage[]>((resolve) => {
      const got: BenchMessage[] = [];
      const listener = (message: BenchMessage) => {
        if (message.bench === kind && got.push(message) === WORKERS) {
          waiting.splice(waiting.indexOf(listener), 1);
          resolve(got);
        }
      };
      waiting.push(listener);
    });
  const broadcast = (message: BenchMessage) => workers.forEach((w) => sendToWorker(w, message));

  const ready = allSay('ready');
  supervisor.start();
  await ready;

  const results: Record<string, unknown> = {};
  const runs: [string, Operation, string[]][] = [
    ['appendMessage (100 chars)', 'appendMessage', appendTargets],
    [`getConversation (${READ_HISTORY} messages)`, 'getConversation', readTargets],
  ];
  for (const [name, op, targets] of runs) {
    broadcast({ bench: 'run', op, targets, inFlight });
    await sleep(warmupSeconds * 1000);
    const cpuBefore = process.cpuUsage();
    const answeredBefore = answered;
    const batchesBefore = batches;
    const started = performance.now();
    await sleep(measureSeconds * 1000);
    const cpu = process.cpuUsage(cpuBefore);
    const seconds = (performance.now() - started) / 1000;
    const ops = answered - answeredBefore;
    const idle = allSay('idle');
    broadcast({ bench: 'pause' });
    const failed = (await idle).reduce((sum, m) => sum + (m.bench === 'idle' ? m.failed : 0), 0);
    results[op] = {
      name,
      opsPerSecond: ops / seconds,
      primaryCpuMicrosPerOp: (cpu.user + cpu.system) / Math.max(ops, 1),
      primaryCpuPercent: ((cpu.user + cpu.system) / 1e6 / seconds) * 100,
      meanBatchSize: ops / Math.max(batches - batchesBefore, 1),
      failed,
    };
  }
  await supervisor.stop();
  report({ workers: WORKERS, inFlightPerWorker: inFlight, measureSeconds, results });
  process.exit(0);
}

(cluster.isPrimary ? primary() : worker()).catch(fail);
