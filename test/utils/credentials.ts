import request from 'supertest';
import { useTestApp } from './create-app';

/** Two API keys (API_KEYS), as a backend and the console would each hold one. */
export const BACKEND_KEY = 'backend-key-0123456789abcdef';
export const CONSOLE_KEY = 'console-key-fedcba9876543210';
export const API_KEYS = `${BACKEND_KEY},${CONSOLE_KEY}`;
export const bearer = (credential: string) => ({ Authorization: `Bearer ${credential}` });

/** What a create answers that access tests need. */
export interface Created {
  id: string;
  customerToken: string;
}

/**
 * The app with API_KEYS set, before and after the enclosing describe's tests, and the calls
 * the access tests make with the backend's key.
 */
export function useAppWithKeys() {
  const app = useTestApp({ env: { API_KEYS } });
  const http = () => request(app().getHttpServer());

  async function create(): Promise<Created> {
    const res = await http().post('/api/conversations').set(bearer(BACKEND_KEY));
    expect(res.status).toBe(201);
    return res.body as Created;
  }

  async function messageCount(id: string): Promise<number> {
    const res = await http().get(`/api/conversations/${id}`).set(bearer(BACKEND_KEY));
    return (res.body as { messageCount: number }).messageCount;
  }

  return { app, http, create, messageCount };
}
