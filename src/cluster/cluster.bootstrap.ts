import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import cluster, { Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { createLogger } from '../common/logger';
import { AddressInfo } from 'node:net';
import { AppConfig, apiKeyList, clusterNodeList } from '../config/app.config';
import { closeGracefully, startHttpServer } from '../http-server';
import { ClusterMetricsHub } from '../observability/cluster-metrics';
import { COLLECT_TIMEOUT_MS, MetricsService } from '../observability/metrics.service';
import { CONTROL_CHANNEL, isReadyMessage, isShutdownMessage, ReadyMessage } from './control';
import { PrimaryModule } from './primary.module';
import { StoreHub } from '../conversations/repositories/ipc/store-hub';
import { sendToWorker, WorkerSupervisor } from './worker-supervisor';

const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/** Starts the server in the mode the configuration asks for. */
export async function runServer(config: AppConfig): Promise<void> {
  const workers = config.WORKERS < 0 ? availableParallelism() : config.WORKERS;
  if (workers === 0) {
    await runSingleProcess(config);
  } else if (cluster.isPrimary) {
    await runPrimary(config, workers);
  } else {
    await runWorker(config);
  }
}

/** Where the store is, without a password. */
function storeDescription(config: AppConfig): string {
  if (config.STORE === 'memory') {
    return 'in-memory store';
  }
  const seeds = clusterNodeList(config.REDIS_CLUSTER_NODES) ?? [];
  if (seeds.length > 0) {
    return `Redis Cluster at ${seeds.map((seed) => `${seed.host}:${seed.port}`).join(',')}`;
  }
  const url = new URL(config.REDIS_URL);
  return `Redis at ${url.protocol}//${url.host}${url.pathname.length > 1 ? url.pathname : ''}`;
}

/**
 * The last line of every start, for the person who started it: where to go, how many
 * processes serve it, and on which store.
 */
function readyMessage(config: AppConfig, port: number, workers: number): string {
  const anyAddress = ['0.0.0.0', '::', ''].includes(config.HOST);
  const host = anyAddress
    ? 'localhost'
    : config.HOST.includes(':')
      ? `[${config.HOST}]`
      : config.HOST;
  const url = `http://${host}:${port}`;
  const processes = workers === 0 ? 'one process (WORKERS=0)' : `${workers} workers`;
  const consoleAt = config.CONSOLE_ENABLED ? `console at ${url}/` : 'console off';
  return (
    `Listening on ${url}${anyAddress ? ` (all interfaces)` : ''}: ${processes}, ` +
    `${storeDescription(config)}; Swagger UI at ${url}/docs, ${consoleAt}`
  );
}

function listeningPort(app: NestExpressApplication): number {
  return (app.getHttpServer().address() as AddressInfo).port;
}

/** Said once at start, by the single process or the primary. */
function warnIfOpen(config: AppConfig): void {
  if (!apiKeyList(config.API_KEYS)?.length) {
    new Logger('Access').warn(
      'API_KEYS is not set: access control is OFF. Anyone who can reach this port may read every ' +
        'conversation and post as the agent. Set API_KEYS before exposing the server.',
    );
  }
}

/** WORKERS=0: one process serving HTTP with the store in its own memory. */
async function runSingleProcess(config: AppConfig): Promise<void> {
  const logger = createLogger(config, { role: 'server' });
  const app = await startHttpServer(config, logger);
  warnIfOpen(config);
  logger.log(readyMessage(config, listeningPort(app), 0), 'Bootstrap');
  let stopping = false;
  for (const signal of STOP_SIGNALS) {
    process.on(signal, () => {
      if (stopping) {
        return;
      }
      stopping = true;
      logger.log(`${signal} received: draining`, 'Bootstrap');
      void closeGracefully(app, config.SHUTDOWN_GRACE_MS).then(() => process.exit(0));
    });
  }
}

/** The cluster primary: owns the store and the eviction job, supervises the workers. */
async function runPrimary(config: AppConfig, workers: number): Promise<void> {
  const logger = createLogger(config, { role: 'primary' });
  const context = await NestFactory.createApplicationContext(PrimaryModule, {
    logger,
    abortOnError: false,
  });
  const hub = context.get(StoreHub);
  const metrics = context.get(MetricsService);
  const metricsHub = new ClusterMetricsHub(
    metrics.registry,
    () =>
      Object.values(cluster.workers ?? {})
        .filter((worker): worker is Worker => Boolean(worker?.isConnected()))
        .map((worker) => ({ send: (message) => sendToWorker(worker, message) })),
    COLLECT_TIMEOUT_MS,
  );
  const log = new Logger('Primary');
  // The start ends once every first worker serves: then say where, once.
  const ready = new Set<number>();
  const onReady = (worker: Worker, port: number) => {
    if (ready.size < workers) {
      ready.add(worker.id);
      if (ready.size === workers) {
        log.log(readyMessage(config, port, workers));
      }
    }
    return true;
  };

  const exit = async (code: number) => {
    await supervisor.stop();
    await context.close();
    process.exit(code);
  };
  const supervisor = new WorkerSupervisor({
    workers,
    graceMs: config.SHUTDOWN_GRACE_MS,
    onMessage: (worker, message) =>
      (isReadyMessage(message) && onReady(worker, message.port)) ||
      hub.handle(message, (reply) => sendToWorker(worker, reply), worker.id) ||
      metricsHub.handle({ send: (reply) => sendToWorker(worker, reply) }, message),
    onRestart: () => metrics.countWorkerRestart(),
    onCrashLoop: (reason) => {
      log.fatal(`Stopping: ${reason}`);
      void exit(1);
    },
  });
  cluster.on('exit', (worker) => hub.forget(worker.id));
  supervisor.start();
  warnIfOpen(config);

  for (const signal of STOP_SIGNALS) {
    process.on(signal, () => {
      log.log(`${signal} received: draining ${workers} workers`);
      void exit(0);
    });
  }
}

/** A cluster worker: serves HTTP, reaches the primary's store over IPC. */
async function runWorker(config: AppConfig): Promise<void> {
  const logger = createLogger(config, { role: 'worker', workerId: cluster.worker?.id });
  let app: NestExpressApplication | null = null;
  let stopReason: string | null = null;
  const drain = (running: NestExpressApplication) => {
    logger.log(`${stopReason}: draining`, 'Worker');
    void closeGracefully(running, config.SHUTDOWN_GRACE_MS).then(() => process.exit(0));
  };
  const stop = (why: string) => {
    if (stopReason) {
      return;
    }
    stopReason = why;
    if (app) {
      drain(app);
    } // else: drained as soon as it has started
  };
  // Listening before the app exists, so a stop ordered during start-up is not lost.
  // SIGTERM to this worker alone is a graceful restart: the primary forks a replacement.
  process.on('SIGTERM', () => stop('SIGTERM received'));
  // Ctrl-C reaches the whole process group; the primary orders the stop.
  process.on('SIGINT', () => undefined);
  process.on('message', (message) => {
    if (isShutdownMessage(message)) {
      stop('Shutdown ordered by the primary');
    }
  });
  // Without the primary there is no store: leave rather than answer 503 forever.
  process.on('disconnect', () => {
    logger.error('Lost the primary: exiting', 'Worker');
    process.exit(1);
  });
  app = await startHttpServer(config, logger);
  // Logged once the listening socket is shared with this worker, not when the app is built.
  const port = listeningPort(app);
  logger.log(`Serving on port ${port}`, 'Worker');
  const ready: ReadyMessage = { ch: CONTROL_CHANNEL, cmd: 'ready', port };
  process.send?.(ready);
  if (stopReason) {
    drain(app);
  }
}
