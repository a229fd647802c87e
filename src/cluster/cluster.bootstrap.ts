import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import cluster, { Worker } from 'node:cluster';
import { AppModule } from '../app.module';
import { createLogger } from '../common/logging/logger';
import { ProcessRole } from './process-role';
import { AddressInfo } from 'node:net';
import { AppConfig } from '../config/app.config';
import { AppSettings, settingsOf } from '../config/app.settings';
import { MetricsService } from '../observability/metrics.service';
import { CONTROL_CHANNEL, isReadyMessage, isShutdownMessage, ReadyMessage } from './control';
import { startHttpServer } from './http-server';
import { PrimaryMessageRouter } from './primary-message-router';
import { PrimaryModule } from './primary.module';
import { WorkerModule } from './worker.module';
import { WorkerSupervisor } from './worker-supervisor';

const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/**
 * Which process this is: the one place that asks node:cluster. Every other file injects the
 * answer (PROCESS_ROLE), given by the root module each role starts.
 */
function processRole(workers: number): ProcessRole {
  if (workers === 0) {
    return 'server';
  }
  return cluster.isPrimary ? 'primary' : 'worker';
}

/** Starts the server in the mode the configuration asks for. */
export async function runServer(config: AppConfig): Promise<void> {
  const settings = settingsOf(config);
  const { workers } = settings.cluster;
  switch (processRole(workers)) {
    case 'server':
      return runSingleProcess(config, settings);
    case 'primary':
      return runPrimary(config, settings, workers);
    case 'worker':
      return runWorker(config, settings);
  }
}

/** Where the store is, without a password. */
function storeDescription({ store, redis }: AppSettings): string {
  if (store.kind === 'memory') {
    return 'in-memory store';
  }
  if (redis.clusterNodes.length > 0) {
    return `Redis Cluster at ${redis.clusterNodes.map((seed) => `${seed.host}:${seed.port}`).join(',')}`;
  }
  return `Redis at ${redis.address}`;
}

/**
 * The last line of every start, for the person who started it: where to go, how many
 * processes serve it, and on which store.
 */
function readyMessage(settings: AppSettings, port: number, workers: number): string {
  const { host: listenHost, consoleEnabled } = settings.http;
  const anyAddress = ['0.0.0.0', '::', ''].includes(listenHost);
  const host = anyAddress ? 'localhost' : listenHost.includes(':') ? `[${listenHost}]` : listenHost;
  const url = `http://${host}:${port}`;
  const processes = workers === 0 ? 'one process (WORKERS=0)' : `${workers} workers`;
  const consoleAt = consoleEnabled ? `console at ${url}/` : 'console off';
  return (
    `Listening on ${url}${anyAddress ? ` (all interfaces)` : ''}: ${processes}, ` +
    `${storeDescription(settings)}; Swagger UI at ${url}/docs, ${consoleAt}`
  );
}

function listeningPort(app: NestExpressApplication): number {
  return (app.getHttpServer().address() as AddressInfo).port;
}

/** Said once at start, by the single process or the primary. */
function warnIfOpen(settings: AppSettings): void {
  if (!settings.access.enabled) {
    new Logger('Access').warn(
      'API_KEYS is not set: access control is OFF. Anyone who can reach this port may read every ' +
        'conversation and post as the agent. Set API_KEYS before exposing the server.',
    );
  }
}

/** WORKERS=0: one process serving HTTP with the store in its own memory. */
async function runSingleProcess(config: AppConfig, settings: AppSettings): Promise<void> {
  const logger = createLogger(config, { role: 'server' });
  const app = await startHttpServer(AppModule, settings.http, logger);
  warnIfOpen(settings);
  logger.log(readyMessage(settings, listeningPort(app), 0), 'Bootstrap');
  let stopping = false;
  for (const signal of STOP_SIGNALS) {
    process.on(signal, () => {
      if (stopping) {
        return;
      }
      stopping = true;
      logger.log(`${signal} received: draining`, 'Bootstrap');
      void app.close().then(() => process.exit(0));
    });
  }
}

/** The cluster primary: owns the store and the eviction job, supervises the workers. */
async function runPrimary(
  config: AppConfig,
  settings: AppSettings,
  workers: number,
): Promise<void> {
  const logger = createLogger(config, { role: 'primary' });
  const context = await NestFactory.createApplicationContext(PrimaryModule, {
    logger,
    abortOnError: false,
  });
  const router = context.get(PrimaryMessageRouter);
  const metrics = context.get(MetricsService);
  const log = new Logger('Primary');
  // The start ends once every first worker serves: then say where, once.
  const ready = new Set<number>();
  const onReady = (worker: Worker, port: number) => {
    if (ready.size < workers) {
      ready.add(worker.id);
      if (ready.size === workers) {
        log.log(readyMessage(settings, port, workers));
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
    graceMs: settings.http.shutdownGraceMs,
    onMessage: (worker, message) =>
      (isReadyMessage(message) && onReady(worker, message.port)) || router.route(worker, message),
    onRestart: () => metrics.countWorkerRestart(),
    onCrashLoop: (reason) => {
      log.fatal(`Stopping: ${reason}`);
      void exit(1);
    },
  });
  cluster.on('exit', (worker) => router.forget(worker));
  supervisor.start();
  warnIfOpen(settings);

  for (const signal of STOP_SIGNALS) {
    process.on(signal, () => {
      log.log(`${signal} received: draining ${workers} workers`);
      void exit(0);
    });
  }
}

/** A cluster worker: serves HTTP, reaches the primary's store over IPC. */
async function runWorker(config: AppConfig, settings: AppSettings): Promise<void> {
  const logger = createLogger(config, { role: 'worker', workerId: cluster.worker?.id });
  let app: NestExpressApplication | null = null;
  let stopReason: string | null = null;
  const drain = (running: NestExpressApplication) => {
    logger.log(`${stopReason}: draining`, 'Worker');
    void running.close().then(() => process.exit(0));
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
  app = await startHttpServer(WorkerModule, settings.http, logger);
  // Logged once the listening socket is shared with this worker, not when the app is built.
  const port = listeningPort(app);
  logger.log(`Serving on port ${port}`, 'Worker');
  const ready: ReadyMessage = { ch: CONTROL_CHANNEL, cmd: 'ready', port };
  process.send?.(ready);
  if (stopReason) {
    drain(app);
  }
}
