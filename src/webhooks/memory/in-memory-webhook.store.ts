import { DueHeap } from '../../common/time/due-heap';
import { StoreError } from '../../common/errors/store-error';
import type { WebhookSettings } from '../../config/app.settings';
import type {
  ChangeSink,
  EvictedConversation,
  TappedChange,
} from '../../conversations/change-outbox';
import {
  AttemptOutcome,
  DeliveryObserver,
  disablesForFailing,
  heaviestBacklog,
  nextStep,
  SILENT_OBSERVER,
} from '../delivery-policy';
import { WebhookSender } from '../webhook-sender';
import { WebhookStore } from '../webhook.store';
import {
  changeEvent,
  deliveryCursor,
  DeliveryAttempt,
  disablesFor,
  DeliveryPage,
  DeliveryQuery,
  DeliveryStatus,
  DeliveryView,
  DisabledReason,
  EndpointPatch,
  EndpointRecord,
  EndpointView,
  endpointView,
  evictionEvents,
  NewEndpoint,
  readDeliveryCursor,
  newEndpoint,
  OLD_SECRET_OVERLAP_MS,
  patchedEndpoint,
  rotatedEndpoint,
  sends,
  signingSecrets,
  testEvent,
  wants,
  WebhookEvent,
} from '../webhook.model';

/** One event's delivery to one endpoint. */
interface Delivery {
  readonly event: WebhookEvent;
  /** The body's bytes, counted against WEBHOOK_MAX_BYTES while pending. */
  readonly bytes: number;
  status: DeliveryStatus;
  createdAt: number;
  /** Pending: when the next attempt is due (absolute, ms). */
  dueAt: number;
  /** Every attempt made, oldest first (a retry keeps the earlier ones in the log). */
  attempts: DeliveryAttempt[];
  /** Attempts of the current schedule: what nextStep counts (a retry starts it over). */
  tries: number;
  /** When it succeeded or failed for good. */
  finishedAt: number;
  /** The attempt in flight, if any. */
  inFlight: AbortController | null;
  /** Bumped on every reschedule: heap entries of an older version are stale. */
  version: number;
}

/** A due-time entry of an endpoint's queue; stale when the delivery's version moved on. */
interface Due {
  at: number;
  order: number;
  version: number;
  delivery: Delivery;
}

type FinishedStatus = Exclude<DeliveryStatus, 'pending'>;

/** An endpoint and what is queued and logged for it. */
interface Endpoint {
  record: EndpointRecord;
  /** By event id (the delivery's id), pending and finished alike. */
  deliveries: Map<string, Delivery>;
  /** Pending deliveries not in flight, by due time (a binary min-heap with stale entries). */
  queue: DueHeap<Due>;
  pending: number;
  /** Bytes of its pending deliveries' bodies (WEBHOOK_MAX_BYTES sums the enabled ones'). */
  pendingBytes: number;
  inFlight: number;
  /** Bytes of the bodies of the attempts handed to the sender (HAND_OVER_BYTES). */
  handedBytes: number;
  /** How long its recent attempts took (ms, a moving average; null: none yet): the hand-over. */
  attemptMs: number | null;
  /**
   * Finished deliveries by how they ended, each in the order they finished: the log's limit
   * drops the first of each, as BullMQ keeps WEBHOOK_LOG_LIMIT completed and as many failed
   * jobs, so that a run of successes never pushes out the failures a recover would send.
   */
  finished: Record<FinishedStatus, Delivery[]>;
}

/** The snapshot's line for an endpoint or one of its pending deliveries. */
interface WebhookLine {
  webhook:
    | { endpoint: EndpointRecord }
    | {
        endpointId: string;
        event: WebhookEvent;
        createdAt: number;
        dueAt: number;
        attempts: DeliveryAttempt[];
        tries: number;
      };
}

const LINE_MARK = '{"webhook":';

/**
 * Past WEBHOOK_MAX_IN_FLIGHT attempts, a sender that queues them (handOverLimit) is handed an
 * endpoint's attempts only while their bodies hold less than this: a few transcript parts
 * (256 KiB each) rather than a hundred milliseconds of them.
 */
const HAND_OVER_BYTES = 1024 * 1024;

/** The weight of the latest attempt in an endpoint's moving average of attempt times. */
const ATTEMPT_MS_WEIGHT = 0.2;

/** How often finished deliveries past WEBHOOK_RETENTION_MS are let go, at most. */
const PRUNE_EVERY_MS = 60_000;

/**
 * The webhooks of the process that keeps the conversations in memory (a single process, or the
 * cluster's primary, which serves the workers through its StoreHub): endpoints, a queue per
 * endpoint and its log, all in this process. The conversation store tells it each change in
 * the same step as the write (ChangeSink); it queues one delivery per endpoint that wants it,
 * and sends them later, never in that step.
 *
 * Due times are absolute, and one timer waits for the earliest. Each endpoint has at most
 * WEBHOOK_MAX_IN_FLIGHT attempts out and its own queue, so a slow receiver only delays its
 * own deliveries. A graceful stop aborts the attempts in flight without counting them; the
 * snapshot (snapshotLines) keeps the endpoints and every pending delivery, which are sent
 * again after the next start under the same id.
 *
 * The log keeps each finished delivery for WEBHOOK_RETENTION_MS after it finished (as BullMQ
 * keeps a finished job), at most WEBHOOK_LOG_LIMIT succeeded and as many failed per endpoint;
 * it is not in the snapshot.
 */
export class InMemoryWebhookStore extends WebhookStore implements ChangeSink {
  private readonly endpoints = new Map<string, Endpoint>();
  /** Bytes of every pending delivery's body, across endpoints, disabled ones too. */
  private pendingBytes = 0;
  private order = 0;
  private running = false;
  private pumpScheduled = false;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private pruneTimer: NodeJS.Timeout | null = null;
  /** Attempts in flight, settled when their outcome is applied (stop waits for them). */
  private readonly attempts = new Set<Promise<void>>();

  constructor(
    private readonly settings: WebhookSettings,
    private readonly sender: WebhookSender,
    private readonly observer: DeliveryObserver = SILENT_OBSERVER,
    private readonly clock: () => number = Date.now,
  ) {
    super();
  }

  /** Begins sending what is due (restored deliveries too). */
  start(): void {
    if (this.running) {
      return;
    }
    this.running = true;
    this.pruneTimer = setInterval(
      () => this.prune(this.clock()),
      Math.min(PRUNE_EVERY_MS, Math.max(1, this.settings.retentionMs)),
    );
    this.pruneTimer.unref();
    this.schedulePump();
  }

  /**
   * Sends nothing more, and aborts the attempts in flight: they stay pending, not counted as
   * attempts, and are sent again after the next start (from the snapshot, when one is kept).
   */
  async stop(): Promise<void> {
    this.running = false;
    this.clearTimer();
    if (this.pruneTimer) {
      clearInterval(this.pruneTimer);
      this.pruneTimer = null;
    }
    for (const endpoint of this.endpoints.values()) {
      for (const delivery of endpoint.deliveries.values()) {
        delivery.inFlight?.abort();
      }
    }
    await Promise.all([...this.attempts]);
  }

  // ---- the conversation store's side (ChangeSink) ----

  changed(changes: TappedChange[]): void {
    // Runs on every write: nothing is built while no endpoint exists.
    if (this.endpoints.size === 0) {
      return;
    }
    for (const change of changes) {
      // Built once, for the first endpoint that wants it; the others share it.
      let event: WebhookEvent | null = null;
      let bytes = 0;
      for (const endpoint of this.endpoints.values()) {
        if (wants(endpoint.record, change.type)) {
          if (!event) {
            event = changeEvent(change);
            bytes = Buffer.byteLength(event.body);
          }
          this.enqueue(endpoint, event, bytes, change.at);
        }
      }
    }
  }

  evicted(conversations: EvictedConversation[]): void {
    if (this.endpoints.size === 0) {
      return;
    }
    const transcript = this.wantsTranscripts();
    for (const conversation of conversations) {
      for (const event of evictionEvents(conversation, transcript)) {
        const bytes = Buffer.byteLength(event.body);
        for (const endpoint of this.endpoints.values()) {
          if (wants(endpoint.record, event.type)) {
            this.enqueue(endpoint, event, bytes, conversation.at);
          }
        }
      }
    }
  }

  wantsTranscripts(): boolean {
    for (const endpoint of this.endpoints.values()) {
      if (wants(endpoint.record, 'conversation.transcript')) {
        return true;
      }
    }
    return false;
  }

  // ---- the HTTP side (WebhookStore) ----

  async createEndpoint(
    input: NewEndpoint,
    now: number,
  ): Promise<{ endpoint: EndpointView; secret: string }> {
    if (this.endpoints.size >= this.settings.maxEndpoints) {
      throw new StoreError('webhook_limit_reached');
    }
    const record = newEndpoint(input, now);
    this.endpoints.set(record.id, newEndpointState(record));
    return { endpoint: endpointView(record, now), secret: record.secret };
  }

  async listEndpoints(now: number): Promise<EndpointView[]> {
    return [...this.endpoints.values()].map((endpoint) => endpointView(endpoint.record, now));
  }

  async getEndpoint(id: string, now: number): Promise<EndpointView> {
    return endpointView(this.endpoint(id).record, now);
  }

  async updateEndpoint(id: string, patch: EndpointPatch, now: number): Promise<EndpointView> {
    const endpoint = this.endpoint(id);
    const { url } = endpoint.record;
    endpoint.record = patchedEndpoint(endpoint.record, patch, now);
    if (endpoint.record.url !== url) {
      // Attempts handed over but not yet on the wire go to the new url.
      this.sender.recall(id);
    }
    if (sends(endpoint.record)) {
      // Enabled (again): what waited while it was disabled is sent now.
      this.schedulePump();
    } else {
      this.pause(endpoint);
    }
    return endpointView(endpoint.record, now);
  }

  async deleteEndpoint(id: string): Promise<void> {
    const endpoint = this.endpoint(id);
    this.endpoints.delete(id);
    for (const delivery of endpoint.deliveries.values()) {
      delivery.inFlight?.abort();
      if (delivery.status === 'pending') {
        this.pendingBytes -= delivery.bytes;
      }
    }
  }

  async rotateSecret(
    id: string,
    now: number,
  ): Promise<{ secret: string; previousSecretExpiresAt: number }> {
    const endpoint = this.endpoint(id);
    const rotated = rotatedEndpoint(endpoint.record, now);
    if ('refused' in rotated) {
      throw new StoreError(rotated.refused);
    }
    endpoint.record = rotated;
    // Attempts handed over but not yet on the wire are signed with both secrets.
    this.sender.recall(id);
    return { secret: rotated.secret, previousSecretExpiresAt: now + OLD_SECRET_OVERLAP_MS };
  }

  /**
   * Queued even for a disabled endpoint, past its caps (someone asked for it, and it is one
   * delivery): it waits with the endpoint's other pending deliveries and is sent once the
   * endpoint sends again (at once for one draining its backlog: sends()).
   */
  async sendTest(id: string, now: number): Promise<{ deliveryId: string }> {
    const endpoint = this.endpoint(id);
    const event = testEvent(id, now);
    this.queueDelivery(endpoint, event, Buffer.byteLength(event.body), now);
    return { deliveryId: event.id };
  }

  async deliveries(id: string, query: DeliveryQuery, now: number): Promise<DeliveryPage> {
    const endpoint = this.endpoint(id);
    this.pruneEndpoint(endpoint, now);
    const after = query.cursor === undefined ? null : cursorOf(query.cursor);
    const listed = [...endpoint.deliveries.values()]
      .filter(
        (delivery) =>
          (query.status === undefined || delivery.status === query.status) &&
          (after === null || newerFirst(delivery, after) > 0),
      )
      .sort(newerFirst);
    const page = listed.slice(0, query.limit);
    const last = page[page.length - 1];
    return {
      deliveries: page.map(deliveryView),
      nextCursor:
        listed.length > page.length && last ? deliveryCursor(last.createdAt, last.event.id) : null,
    };
  }

  async retryDelivery(id: string, deliveryId: string, now: number): Promise<void> {
    const endpoint = this.endpoint(id);
    this.pruneEndpoint(endpoint, now);
    const delivery = endpoint.deliveries.get(deliveryId);
    if (!delivery) {
      throw new StoreError('webhook_delivery_not_found');
    }
    this.requeue(endpoint, delivery, now);
  }

  async recover(id: string, since: number, now: number): Promise<{ requeued: number }> {
    const endpoint = this.endpoint(id);
    this.pruneEndpoint(endpoint, now);
    let requeued = 0;
    for (const delivery of [...endpoint.finished.failed]) {
      if (delivery.createdAt >= since) {
        this.requeue(endpoint, delivery, now);
        requeued++;
      }
    }
    return { requeued };
  }

  // ---- the snapshot ----

  /** Endpoints exist: the conversation store builds no change for the outbox otherwise. */
  listening(): boolean {
    return this.endpoints.size > 0;
  }

  /** Each endpoint's pending deliveries (the queue-depth gauge). */
  async pendingCounts(): Promise<Record<string, number>> {
    return Object.fromEntries([...this.endpoints].map(([id, endpoint]) => [id, endpoint.pending]));
  }

  /** The endpoints (with their secrets) and their pending deliveries, a JSON line each. */
  *snapshotLines(): IterableIterator<string> {
    for (const endpoint of this.endpoints.values()) {
      yield JSON.stringify({ webhook: { endpoint: endpoint.record } } satisfies WebhookLine);
      for (const delivery of endpoint.deliveries.values()) {
        if (delivery.status === 'pending') {
          const line: WebhookLine = {
            webhook: {
              endpointId: endpoint.record.id,
              event: delivery.event,
              createdAt: delivery.createdAt,
              dueAt: delivery.dueAt,
              attempts: delivery.attempts,
              tries: delivery.tries,
            },
          };
          yield JSON.stringify(line);
        }
      }
    }
  }

  /** Puts back a line of snapshotLines(); false for a line that is not one (a conversation's). */
  restore(line: string): boolean {
    if (!line.startsWith(LINE_MARK)) {
      return false;
    }
    const { webhook } = JSON.parse(line) as WebhookLine;
    if ('endpoint' in webhook) {
      this.endpoints.set(webhook.endpoint.id, newEndpointState(webhook.endpoint));
      return true;
    }
    const endpoint = this.endpoints.get(webhook.endpointId);
    if (endpoint && !endpoint.deliveries.has(webhook.event.id)) {
      const delivery = this.queueDelivery(
        endpoint,
        webhook.event,
        Buffer.byteLength(webhook.event.body),
        webhook.createdAt,
      );
      delivery.attempts = webhook.attempts;
      delivery.tries = webhook.tries;
      this.reschedule(endpoint, delivery, webhook.dueAt);
    }
    return true;
  }

  // ---- queueing ----

  /** Queues `event` for an endpoint that wants it, within its caps, else disables it (backlog). */
  private enqueue(endpoint: Endpoint, event: WebhookEvent, bytes: number, now: number): void {
    if (endpoint.deliveries.has(event.id)) {
      return;
    }
    if (
      endpoint.pending >= this.settings.maxPending ||
      // Every endpoint's bytes are within the cap, or only the enabled ones' need to be.
      (this.pendingBytes + bytes > this.settings.maxBytes && !this.makeRoom(endpoint, bytes, now))
    ) {
      this.disable(endpoint, 'backlog', now);
      return;
    }
    this.queueDelivery(endpoint, event, bytes, now);
  }

  /**
   * Whether `bytes` more for `endpoint` fit within WEBHOOK_MAX_BYTES, which bounds the bodies
   * the enabled endpoints have pending (a disabled endpoint's no longer grow). While
   * they do not fit, the enabled endpoint with the most pending bytes, when it is another, is
   * disabled (backlog): the one whose receiver is behind, not whichever queued next.
   */
  private makeRoom(endpoint: Endpoint, bytes: number, now: number): boolean {
    for (;;) {
      const held = new Map<string, number>();
      let enabledBytes = 0;
      for (const [id, other] of this.endpoints) {
        if (other.record.disabledReason === null) {
          held.set(id, other.pendingBytes);
          enabledBytes += other.pendingBytes;
        }
      }
      if (enabledBytes + bytes <= this.settings.maxBytes) {
        return true;
      }
      const heaviest = heaviestBacklog(held, endpoint.record.id);
      if (heaviest === endpoint.record.id) {
        return false;
      }
      this.disable(this.endpoints.get(heaviest) as Endpoint, 'backlog', now);
    }
  }

  private queueDelivery(
    endpoint: Endpoint,
    event: WebhookEvent,
    bytes: number,
    now: number,
  ): Delivery {
    const delivery: Delivery = {
      event,
      bytes,
      status: 'pending',
      createdAt: now,
      dueAt: now,
      attempts: [],
      tries: 0,
      finishedAt: 0,
      inFlight: null,
      version: 0,
    };
    endpoint.deliveries.set(event.id, delivery);
    endpoint.pending++;
    endpoint.pendingBytes += bytes;
    this.pendingBytes += bytes;
    this.push(endpoint, delivery);
    return delivery;
  }

  /**
   * A retry or a recover: a finished delivery is pending again with a fresh schedule, due now;
   * a pending one is due now (one in flight is left to its attempt).
   */
  private requeue(endpoint: Endpoint, delivery: Delivery, now: number): void {
    if (delivery.status === 'pending') {
      if (!delivery.inFlight) {
        this.reschedule(endpoint, delivery, now);
      }
      return;
    }
    const finished = endpoint.finished[delivery.status];
    const at = finished.indexOf(delivery);
    if (at >= 0) {
      finished.splice(at, 1);
    }
    delivery.status = 'pending';
    delivery.tries = 0;
    delivery.finishedAt = 0;
    endpoint.pending++;
    endpoint.pendingBytes += delivery.bytes;
    this.pendingBytes += delivery.bytes;
    this.reschedule(endpoint, delivery, now);
  }

  private reschedule(endpoint: Endpoint, delivery: Delivery, at: number): void {
    delivery.version++;
    delivery.dueAt = at;
    this.push(endpoint, delivery);
  }

  private push(endpoint: Endpoint, delivery: Delivery): void {
    endpoint.queue.push({
      at: delivery.dueAt,
      order: this.order++,
      version: delivery.version,
      delivery,
    });
    if (this.running) {
      if (delivery.dueAt <= this.clock()) {
        this.schedulePump();
      } else {
        this.armTimer(delivery.dueAt);
      }
    }
  }

  private finish(
    endpoint: Endpoint,
    delivery: Delivery,
    status: FinishedStatus,
    now: number,
  ): void {
    delivery.status = status;
    delivery.finishedAt = now;
    endpoint.pending--;
    endpoint.pendingBytes -= delivery.bytes;
    this.pendingBytes -= delivery.bytes;
    const finished = endpoint.finished[status];
    finished.push(delivery);
    while (finished.length > this.settings.logLimit) {
      endpoint.deliveries.delete((finished.shift() as Delivery).event.id);
    }
  }

  private disable(
    endpoint: Endpoint,
    reason: Exclude<DisabledReason, 'manual'>,
    now: number,
  ): void {
    if (!disablesFor(endpoint.record, reason)) {
      return;
    }
    endpoint.record = { ...endpoint.record, disabledReason: reason, updatedAt: now };
    this.observer.disabled(endpoint.record.id, reason);
    this.pause(endpoint);
  }

  /**
   * A disabled endpoint's attempts stop (but for a backlog, which drains: sends()): each one on
   * the wire or handed to the sender ends as not made (send() puts it back, pending and due as
   * it was), to be sent once it is enabled again, as a stopped Redis worker puts its jobs back.
   */
  private pause(endpoint: Endpoint): void {
    if (endpoint.inFlight === 0 || sends(endpoint.record)) {
      return;
    }
    for (const delivery of endpoint.deliveries.values()) {
      delivery.inFlight?.abort();
    }
  }

  // ---- sending ----

  /** Sends what is due on a later turn: never in the step of the write that queued it. */
  private schedulePump(): void {
    if (this.pumpScheduled || !this.running) {
      return;
    }
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Starts every due attempt each endpoint has room for, then waits for the next due time. */
  private pump(): void {
    if (!this.running) {
      return;
    }
    const now = this.clock();
    let next = Infinity;
    for (const endpoint of this.endpoints.values()) {
      if (!sends(endpoint.record)) {
        continue;
      }
      const { queue } = endpoint;
      const handOver = this.sender.handOverLimit(this.settings.maxInFlight, endpoint.attemptMs);
      while (
        queue.size > 0 &&
        endpoint.inFlight < handOver &&
        (endpoint.inFlight < this.settings.maxInFlight || endpoint.handedBytes < HAND_OVER_BYTES)
      ) {
        const top = queue.peek() as Due;
        if (top.version !== top.delivery.version || top.delivery.status !== 'pending') {
          queue.pop();
          continue;
        }
        if (top.at > now) {
          next = Math.min(next, top.at);
          break;
        }
        queue.pop();
        this.send(endpoint, top.delivery);
      }
    }
    if (next < Infinity) {
      this.armTimer(next);
    }
  }

  private armTimer(at: number): void {
    if (!this.running || at >= this.timerAt) {
      return;
    }
    this.clearTimer();
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.timerAt = Infinity;
        this.pump();
      },
      Math.max(0, at - this.clock()),
    );
  }

  private clearTimer(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.timerAt = Infinity;
  }

  private send(endpoint: Endpoint, delivery: Delivery): void {
    const controller = new AbortController();
    delivery.inFlight = controller;
    endpoint.inFlight++;
    endpoint.handedBytes += delivery.bytes;
    const at = this.clock();
    const { record } = endpoint;
    const attempt = this.sender
      .send(record.url, delivery.event, signingSecrets(record, at), controller.signal, record.id)
      .then(
        (outcome) => outcome,
        (error: unknown): AttemptOutcome => ({
          ok: false,
          statusCode: null,
          durationMs: this.clock() - at,
          error: error instanceof Error ? error.message : String(error),
        }),
      )
      .then((outcome) => {
        endpoint.inFlight--;
        endpoint.handedBytes -= delivery.bytes;
        delivery.inFlight = null;
        if (controller.signal.aborted || outcome.recalled) {
          // A stop, a delete or a recall: not an attempt. Pending again, due as it was.
          if (this.endpoints.get(record.id) === endpoint) {
            this.push(endpoint, delivery);
          }
          return;
        }
        this.settle(endpoint, delivery, outcome.startedAt ?? at, outcome);
        this.schedulePump();
      })
      .finally(() => this.attempts.delete(attempt));
    this.attempts.add(attempt);
  }

  /** Applies an attempt's outcome (delivery-policy.ts) and tells the observer. */
  private settle(
    endpoint: Endpoint,
    delivery: Delivery,
    at: number,
    outcome: AttemptOutcome,
  ): void {
    const now = this.clock();
    delivery.attempts.push({
      at,
      statusCode: outcome.statusCode,
      durationMs: outcome.durationMs,
      error: outcome.error,
    });
    delivery.tries++;
    endpoint.attemptMs =
      endpoint.attemptMs === null
        ? outcome.durationMs
        : endpoint.attemptMs + (outcome.durationMs - endpoint.attemptMs) * ATTEMPT_MS_WEIGHT;
    const step = nextStep(outcome, delivery.tries, this.settings.retryScheduleMs);
    const id = endpoint.record.id;
    if (outcome.ok) {
      endpoint.record = { ...endpoint.record, lastSuccessAt: now, failingSince: null };
    } else if (endpoint.record.failingSince === null) {
      endpoint.record = { ...endpoint.record, failingSince: at };
    }
    switch (step.kind) {
      case 'succeeded':
        this.finish(endpoint, delivery, 'succeeded', now);
        break;
      case 'retry':
        this.reschedule(endpoint, delivery, now + step.delayMs);
        break;
      case 'failed':
        this.finish(endpoint, delivery, 'failed', now);
        break;
      case 'gone':
        this.finish(endpoint, delivery, 'failed', now);
        break;
    }
    this.observer.attempted(id, outcome, step.kind);
    if (step.kind === 'gone') {
      this.disable(endpoint, 'gone', now);
    } else if (
      step.kind === 'failed' &&
      disablesForFailing(endpoint.record.failingSince, now, this.settings.disableAfterMs)
    ) {
      this.disable(endpoint, 'failing', now);
    }
  }

  // ---- the log ----

  private prune(now: number): void {
    for (const endpoint of this.endpoints.values()) {
      this.pruneEndpoint(endpoint, now);
    }
  }

  /** Lets go of finished deliveries that finished more than WEBHOOK_RETENTION_MS ago. */
  private pruneEndpoint(endpoint: Endpoint, now: number): void {
    const cutoff = now - this.settings.retentionMs;
    for (const finished of [endpoint.finished.succeeded, endpoint.finished.failed]) {
      let drop = 0;
      while (drop < finished.length && finished[drop].finishedAt < cutoff) {
        endpoint.deliveries.delete(finished[drop].event.id);
        drop++;
      }
      if (drop > 0) {
        finished.splice(0, drop);
      }
    }
  }

  private endpoint(id: string): Endpoint {
    const endpoint = this.endpoints.get(id);
    if (!endpoint) {
      throw new StoreError('webhook_not_found');
    }
    return endpoint;
  }
}

function newEndpointState(record: EndpointRecord): Endpoint {
  return {
    record,
    deliveries: new Map(),
    queue: new DueHeap<Due>(),
    pending: 0,
    pendingBytes: 0,
    inFlight: 0,
    handedBytes: 0,
    attemptMs: null,
    finished: { succeeded: [], failed: [] },
  };
}

function deliveryView(delivery: Delivery): DeliveryView {
  return {
    id: delivery.event.id,
    type: delivery.event.type,
    status: delivery.status,
    createdAt: delivery.createdAt,
    nextAttemptAt: delivery.status === 'pending' ? delivery.dueAt : null,
    attempts: delivery.attempts.map((attempt) => ({ ...attempt })),
  };
}

interface Position {
  createdAt: number;
  id: string;
}

/** Newest first: by createdAt, then id, both descending. Negative: `a` comes first. */
function newerFirst(a: Delivery | Position, b: Delivery | Position): number {
  const [aAt, aId] = 'event' in a ? [a.createdAt, a.event.id] : [a.createdAt, a.id];
  const [bAt, bId] = 'event' in b ? [b.createdAt, b.event.id] : [b.createdAt, b.id];
  if (aAt !== bAt) {
    return bAt - aAt;
  }
  return aId < bId ? 1 : aId > bId ? -1 : 0;
}

/** A cursor as deliveries() made it (the service refuses any other). */
function cursorOf(cursor: string): Position | null {
  const read = readDeliveryCursor(cursor);
  return read ? { createdAt: read.at, id: read.id } : null;
}
