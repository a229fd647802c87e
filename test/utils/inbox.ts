import { NestExpressApplication } from '@nestjs/platform-express';
import { AddressInfo } from 'node:net';
import request from 'supertest';
import { Clock } from '../../src/common/time/clock';
import { T0 } from './api';
import { createTestApp } from './create-app';
import { EventStreamClient, openEventStream, StreamEvent } from './event-stream';
import { FakeClock } from './fake-clock';

/*
 * What the inbox suites share: an app that also listens on a loopback port (for event
 * streams), and the inbox's requests made with one credential.
 */

export interface Customer {
  externalId?: string;
  name?: string;
  email?: string;
}

/** A PATCH or claim's answer (ConversationStateDto). */
export interface ConversationState {
  id: string;
  conversationId: string;
  seq: number;
  status: string;
  snoozedUntil: number | null;
  assignee: string | null;
  team: string | null;
  customer: Customer;
  unread: { customer: number; agent?: number };
  waitingSince: number | null;
  metadata: Record<string, string | number | boolean>;
  createdAt: number;
  lastActivityAt: number;
  messageCount: number;
}

/** A row of the list and of the feed (InboxConversationDto). */
export interface InboxConversation extends Omit<ConversationState, 'metadata'> {
  lastMessage: { sender: string; seq: number; content: string } | null;
}

export interface InboxPage {
  conversations: InboxConversation[];
  nextCursor: string | null;
}

export interface Counts {
  open: number;
  pending: number;
  snoozed: number;
  resolved: number;
  assigned: number;
  unassigned: number;
}

type Http = () => ReturnType<typeof request>;

/** The inbox's requests, each with `headers` (a credential) unless given others. */
export function inboxClient(http: Http, headers: Record<string, string> = {}) {
  async function create(body?: object): Promise<{ id: string; customerToken: string }> {
    const req = http().post('/api/conversations').set(headers);
    const res = await (body === undefined ? req : req.send(body));
    expect(res.status).toBe(201);
    return res.body as { id: string; customerToken: string };
  }

  const patch = (id: string, body: unknown, extra: Record<string, string> = {}) =>
    http()
      .patch(`/api/conversations/${id}`)
      .set({ ...headers, ...extra })
      .send(body as object);

  const claim = (id: string, assignee: unknown) =>
    http().post(`/api/conversations/${id}/claim`).set(headers).send({ assignee });

  const get = (id: string) => http().get(`/api/conversations/${id}`).set(headers);

  /** The list's answer for a query string (without `?`). */
  const list = (query = '') =>
    http()
      .get(`/api/conversations${query ? `?${query}` : ''}`)
      .set(headers);

  /** The ids of the list's first page, which must be 200. */
  async function listIds(query = ''): Promise<string[]> {
    const res = await list(query);
    expect(res.status).toBe(200);
    return (res.body as InboxPage).conversations.map((row) => row.id);
  }

  /** Walks the list from the first page to nextCursor null; every page's rows, in order. */
  async function walk(query: string, between?: (page: number) => Promise<void>) {
    const pages: InboxConversation[][] = [];
    let cursor: string | null = null;
    do {
      const res = await list(cursor ? `${query}&cursor=${cursor}` : query);
      expect(res.status).toBe(200);
      const page = res.body as InboxPage;
      pages.push(page.conversations);
      cursor = page.nextCursor;
      if (cursor && between) {
        await between(pages.length);
      }
    } while (cursor);
    return pages;
  }

  async function post(id: string, sender: 'agent' | 'customer', content = 'hi') {
    const res = await http()
      .post(`/api/conversations/${id}/messages`)
      .set(headers)
      .send({ sender, content });
    expect(res.status).toBe(201);
    return res.body as { id: string; seq: number };
  }

  async function etag(id: string): Promise<string> {
    const res = await get(id);
    expect(res.status).toBe(200);
    return res.headers.etag as string;
  }

  return { create, patch, claim, get, list, listIds, walk, post, etag };
}

/** An ETag as the server gives it: `"<life>.<seq>"`. */
export const ETAG = /^"\d{1,15}\.\d{1,15}"$/;

export const etagSeq = (etag: string): number => Number(/\.(\d+)"$/.exec(etag)?.[1]);

/**
 * The real app listening on a loopback port, before and after the enclosing describe's
 * tests: requests through supertest, event streams over real connections. A fake clock
 * unless `realClock` (snoozes that wake on time).
 */
export function useListeningApp(
  env: Record<string, string> = {},
  { realClock = false }: { realClock?: boolean } = {},
) {
  const clock = new FakeClock(T0);
  let app: NestExpressApplication | undefined;
  let baseUrl = '';
  beforeAll(async () => {
    app = await createTestApp({
      env,
      override: realClock ? undefined : (b) => b.overrideProvider(Clock).useValue(clock),
    });
    await app.listen(0, '127.0.0.1');
    const { port } = app.getHttpServer().address() as AddressInfo;
    baseUrl = `http://127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await app?.close();
  });
  const getApp = () => {
    if (!app) {
      throw new Error('the app has not started');
    }
    return app;
  };
  const http: Http = () => request(getApp().getHttpServer());
  return {
    clock,
    app: getApp,
    http,
    baseUrl: () => baseUrl,
    /** An event stream on its own connection, with these headers. */
    stream: (path: string, headers: Record<string, string> = {}) =>
      openEventStream(baseUrl, path, headers),
  };
}

/** The events of a stream after the first `from`, as event name and parsed data. */
export function eventsOf(client: EventStreamClient, from = 0) {
  return client.events.slice(from).map((event: StreamEvent) => ({
    event: event.event,
    id: event.id,
    data: JSON.parse(event.data) as Record<string, unknown>,
  }));
}

export const settle = (ms = 150) => new Promise((resolve) => setTimeout(resolve, ms));
