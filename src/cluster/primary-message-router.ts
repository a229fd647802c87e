import { Injectable } from '@nestjs/common';
import { Worker } from 'node:cluster';
import { StoreHub } from './store-hub';
import { ClusterMetricsHub } from '../observability/cluster-metrics';
import { sendToWorker } from './worker-supervisor';

/**
 * The primary's side of the workers' messages: a store call goes to the store hub, a metrics
 * message to the metrics hub, each answered to the worker that sent it. Control messages
 * (a worker's `ready`) are the bootstrap's and never reach it.
 */
@Injectable()
export class PrimaryMessageRouter {
  constructor(
    private readonly store: StoreHub,
    private readonly metrics: ClusterMetricsHub,
  ) {}

  /** Handles one message from `worker`; false when no hub takes it. */
  route(worker: Worker, message: unknown): boolean {
    const reply = (answer: unknown) => sendToWorker(worker, answer);
    return (
      this.store.handle(message, reply, worker.id) || this.metrics.handle({ send: reply }, message)
    );
  }

  /** A worker has exited: what it watched in the store ends. */
  forget(worker: Worker): void {
    this.store.forget(worker.id);
  }
}
