import { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { Clock } from '../../src/common/time/clock';
import { useTestApp } from './create-app';
import { FakeClock } from './fake-clock';

export const T0 = 1_764_201_600_000;
/** A valid UUID v4 that no conversation or message will ever have. */
export const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';

export interface Message {
  id: string;
  conversationId: string;
  sender: string;
  content: string;
  timestamp: number;
  seq: number;
  createdAt: number;
}

export interface Conversation {
  id: string;
  conversationId: string;
  createdAt: number;
  lastActivityAt: number;
  messageCount: number;
}

export interface History extends Conversation {
  messages: Message[];
  /** Who waits since when (the inbox's state fields are in utils/inbox.ts). */
  waitingSince?: number | null;
}

/** Helpers bound to one app. */
function client(getApp: () => NestExpressApplication) {
  const http = () => request(getApp().getHttpServer());

  async function createConversation(): Promise<Conversation> {
    const res = await http().post('/api/conversations');
    expect(res.status).toBe(201);
    return res.body as Conversation;
  }

  async function post(conversationId: string, body: object): Promise<Message> {
    const res = await http().post(`/api/conversations/${conversationId}/messages`).send(body);
    expect(res.status).toBe(201);
    return res.body as Message;
  }

  async function history(conversationId: string): Promise<History> {
    const res = await http().get(`/api/conversations/${conversationId}`);
    expect(res.status).toBe(200);
    return res.body as History;
  }

  /** Runs a request that must fail and checks the conversation is exactly as before it. */
  async function expectUnchanged(
    conversationId: string,
    clock: FakeClock,
    action: () => Promise<void>,
  ): Promise<void> {
    const before = await history(conversationId);
    clock.advance(1_000); // any touch would now move lastActivityAt
    await action();
    expect(await history(conversationId)).toEqual(before);
  }

  return { http, createConversation, post, history, expectUnchanged };
}

/** The real app with a fake clock, started before and closed after the enclosing describe. */
export function useApp(env: Record<string, string> = {}) {
  const clock = new FakeClock(T0);
  const app = useTestApp({ env, override: (b) => b.overrideProvider(Clock).useValue(clock) });
  return { clock, ...client(app) };
}
