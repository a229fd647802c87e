/// <reference lib="dom" />
// Functions passed to page.evaluate and waitForFunction run in the browser.
import type { Browser, Page } from 'playwright-core';
import request from 'supertest';
import { useTestApp } from './utils/create-app';
import { describeWithBrowser, launchChromium } from './utils/browser';
import { requestJson, useServer } from './utils/spawn-server';

const API_KEY = 'console-test-key-0123456789';

// The page and its files over HTTP: routes/get-root.e2e-spec.ts. Here: the credential the
// console puts in a stream's address, and the console in a browser.

describe('?access_token= on event streams (API_KEYS set)', () => {
  const app = useTestApp({ env: { API_KEYS: API_KEY } });

  it('takes ?access_token= on event streams only', async () => {
    const http = () => request(app().getHttpServer());
    const created = await http()
      .post('/api/conversations')
      .set('Authorization', `Bearer ${API_KEY}`);
    const { id, customerToken } = created.body as { id: string; customerToken: string };

    const read = await http().get(`/api/conversations/${id}?access_token=${customerToken}`);
    expect(read.status).toBe(401);
    const post = await http()
      .post(`/api/conversations/${id}/messages?access_token=${API_KEY}`)
      .send({ sender: 'agent', content: 'x' });
    expect(post.status).toBe(401);

    // A stream that is refused answers at once; one that is allowed stays open (so: a timeout).
    const refused = await http().get(
      `/api/conversations/${id}/events?access_token=wrong-token-000000`,
    );
    expect(refused.status).toBe(401);
    const server = app().getHttpServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    const controller = new AbortController();
    const res = await fetch(
      `http://127.0.0.1:${port}/api/conversations/${id}/events?access_token=${customerToken}`,
      { signal: controller.signal },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    controller.abort();
  });
});

/** The texts of a pane's messages, in order. */
const texts = (page: Page, pane: 'customer' | 'agent') =>
  page.locator(`#${pane} .messages .text`).allTextContents();

async function waitForTexts(page: Page, pane: 'customer' | 'agent', expected: string[]) {
  await page.waitForFunction(
    ([selector, want]) =>
      JSON.stringify(Array.from(document.querySelectorAll(selector), (e) => e.textContent)) ===
      want,
    [`#${pane} .messages .text`, JSON.stringify(expected)] as const,
    { timeout: 8_000 },
  );
}

async function send(page: Page, pane: 'customer' | 'agent', text: string) {
  await page.fill(`#${pane} .composer input`, text);
  await page.click(`#${pane} .composer button`);
}

describeWithBrowser('the console in headless Chromium (built server, WORKERS=2)', () => {
  jest.setTimeout(90_000);
  let browser: Browser;

  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  describe('open server', () => {
    const server = useServer({ WORKERS: '2' });

    it('chats both ways live, deletes from both panes, and keeps hostile text as text', async () => {
      const page = await browser.newPage();
      const dialogs: string[] = [];
      page.on('dialog', (dialog) => {
        dialogs.push(dialog.message());
        void dialog.dismiss();
      });
      await page.goto(`${server().baseUrl}/`);
      await page.click('#start');
      await page.locator('#status[data-state="connected"]').waitFor({ timeout: 8_000 });
      const id = (await page.locator('#conversation').textContent())?.split(' ')[1] ?? '';
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(new URL(page.url()).hash).toBe(`#${id}`);

      await send(page, 'customer', 'Hello, my order has not arrived.');
      await waitForTexts(page, 'agent', ['Hello, my order has not arrived.']);
      await send(page, 'agent', 'Sorry! Let me check.');
      await waitForTexts(page, 'customer', [
        'Hello, my order has not arrived.',
        'Sorry! Let me check.',
      ]);

      const hostile = '<img src=x onerror=alert(1)>';
      await send(page, 'customer', hostile);
      await waitForTexts(page, 'agent', [
        'Hello, my order has not arrived.',
        'Sorry! Let me check.',
        hostile,
      ]);
      expect(await page.locator('.messages img').count()).toBe(0);
      expect(dialogs).toEqual([]);

      // Delete the agent's message from the agent pane: it vanishes from both.
      await page.click('#agent .messages li[data-sender="agent"] .delete');
      const remaining = ['Hello, my order has not arrived.', hostile];
      await waitForTexts(page, 'agent', remaining);
      await waitForTexts(page, 'customer', remaining);

      // What the page shows is what the server holds.
      const history = await requestJson<{ messages: { content: string }[] }>(
        server().baseUrl,
        'GET',
        `/api/conversations/${id}`,
      );
      expect(history.body.messages.map((m) => m.content)).toEqual(remaining);
      expect(await texts(page, 'customer')).toEqual(remaining);
      await page.close();
    });

    it('shows the other side typing, and marks "Read" under what the other side has read', async () => {
      const page = await browser.newPage();
      await page.goto(`${server().baseUrl}/`);
      await page.click('#start');
      await page.locator('#status[data-state="connected"]').waitFor({ timeout: 8_000 });
      const id = (await page.locator('#conversation').textContent())?.split(' ')[1] ?? '';

      await page.fill('#customer .composer input', 'Where is');
      const agentTyping = page.locator('#agent .typing');
      await agentTyping.waitFor({ state: 'visible', timeout: 8_000 });
      expect(await agentTyping.textContent()).toBe('Customer is typing…');
      expect(await page.locator('#customer .typing').isHidden()).toBe(true);

      await send(page, 'customer', 'Where is my order?');
      // Sent: the indicator goes at once; the agent pane, visible, reports the message read.
      await agentTyping.waitFor({ state: 'hidden', timeout: 8_000 });
      const mine = page.locator('#customer .messages li[data-sender="customer"]');
      await mine.locator('.read').waitFor({ timeout: 8_000 });
      expect(await mine.locator('.read').textContent()).toBe('Read');

      await page.fill('#agent .composer input', 'Let me');
      await page.locator('#customer .typing').waitFor({ state: 'visible', timeout: 8_000 });
      expect(await page.locator('#customer .typing').textContent()).toBe('Agent is typing…');
      await send(page, 'agent', 'Let me check.');
      await page
        .locator('#agent .messages li[data-sender="agent"] .read')
        .waitFor({ timeout: 8_000 });
      // One "Read" per pane, under the last message read.
      expect(await page.locator('#customer .read').count()).toBe(1);
      expect(await page.locator('#agent .read').count()).toBe(1);

      const history = await requestJson<{ lastRead: { customer: number; agent: number } }>(
        server().baseUrl,
        'GET',
        `/api/conversations/${id}`,
      );
      // The customer's message took seq 1; the agent's read 2; the agent's message 3.
      expect(history.body.lastRead).toEqual({ customer: 3, agent: 1 });
      await page.close();
    });

    it('reconnects when the workers die, and shows what was posted meanwhile', async () => {
      const page = await browser.newPage();
      await page.goto(`${server().baseUrl}/`);
      await page.click('#start');
      await page.locator('#status[data-state="connected"]').waitFor({ timeout: 8_000 });
      await send(page, 'customer', 'before');
      await waitForTexts(page, 'agent', ['before']);
      const id = (await page.locator('#conversation').textContent())?.split(' ')[1] ?? '';

      const serving = server().lines(/Serving on port/).length;
      for (const pid of server().workerPids()) {
        process.kill(pid, 'SIGKILL');
      }
      await page.locator('#status[data-state="reconnecting"]').waitFor({ timeout: 8_000 });
      await server().waitFor(/Serving on port/, serving + 2, 20_000);
      const posted = await requestJson(
        server().baseUrl,
        'POST',
        `/api/conversations/${id}/messages`,
        {
          sender: 'agent',
          content: 'while you were away',
        },
      );
      expect(posted.status).toBe(201);

      await waitForTexts(page, 'customer', ['before', 'while you were away']);
      await page.locator('#status[data-state="connected"]').waitFor({ timeout: 10_000 });
      await page.close();
    });

    it('fits a phone-width screen: the panes stack', async () => {
      const page = await browser.newPage({ viewport: { width: 375, height: 740 } });
      await page.goto(`${server().baseUrl}/`);
      const customer = await page.locator('#customer').boundingBox();
      const agent = await page.locator('#agent').boundingBox();
      expect(customer && agent && agent.y >= customer.y + customer.height).toBe(true);
      expect(customer && customer.width <= 375).toBe(true);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
      expect(overflow).toBeLessThanOrEqual(375);
      await page.close();
    });

    it('/docs: Swagger UI, "Try it out" on create conversation answers 201 in the page', async () => {
      const page = await browser.newPage();
      await page.goto(`${server().baseUrl}/docs`);
      const operation = page.locator('#operations-conversations-ConversationsController_create');
      await operation.locator('.opblock-summary').click();
      await operation.locator('button.try-out__btn').click();
      await operation.locator('button.execute').click();
      const status = operation.locator('.live-responses-table .response .response-col_status');
      await status.first().waitFor({ timeout: 8_000 });
      expect((await status.first().textContent())?.trim()).toBe('201');
      await page.close();
    });
  });

  describe('with API_KEYS set', () => {
    const server = useServer({ WORKERS: '2', API_KEYS: API_KEY });

    it('works with a pasted key: the customer pane uses the customer token', async () => {
      const page = await browser.newPage();
      await page.goto(`${server().baseUrl}/`);
      // Without the key, starting fails with a clear status.
      await page.click('#start');
      await page
        .locator('#status[data-state="error"]', { hasText: '401' })
        .waitFor({ timeout: 5_000 });

      await page.fill('#api-key', API_KEY);
      await page.click('#start');
      await page.locator('#status[data-state="connected"]').waitFor({ timeout: 8_000 });
      const token = await page.inputValue('#customer-token');
      expect(token).toMatch(/^[0-9a-f-]{36}\.[A-Za-z0-9_-]{43}$/);

      await send(page, 'customer', 'from the customer');
      await waitForTexts(page, 'agent', ['from the customer']);
      await send(page, 'agent', 'from the agent');
      await waitForTexts(page, 'customer', ['from the customer', 'from the agent']);
      // The agent pane shows its own message once its POST answers (or its stream brings it).
      await waitForTexts(page, 'agent', ['from the customer', 'from the agent']);
      expect(
        await page
          .locator('#agent .messages li')
          .evaluateAll((items) => items.map((item) => (item as HTMLElement).dataset.sender)),
      ).toEqual(['customer', 'agent']);
      await page.close();
    });

    it('/docs: Authorize takes the key, and "Try it out" on create answers 201', async () => {
      const page = await browser.newPage();
      await page.goto(`${server().baseUrl}/docs`);
      const operation = page.locator('#operations-conversations-ConversationsController_create');
      const tryCreate = async () => {
        await operation.locator('button.execute').click();
        const status = operation.locator('.live-responses-table .response .response-col_status');
        await status.first().waitFor({ timeout: 8_000 });
        return (await status.first().textContent())?.trim();
      };
      await operation.locator('.opblock-summary').click();
      await operation.locator('button.try-out__btn').click();
      expect(await tryCreate()).toBe('401');

      await page.click('.auth-wrapper .authorize');
      await page.fill('.modal-ux input', API_KEY);
      await page.click('.modal-ux .auth-btn-wrapper button.authorize');
      await page.click('.modal-ux button.btn-done');
      await operation.locator('.btn-clear').click();
      expect(await tryCreate()).toBe('201');
      await page.close();
    });
  });

  describe('eviction', () => {
    const server = useServer({
      WORKERS: '2',
      CONVERSATION_TTL_MS: '1500',
      EVICTION_CRON: '* * * * * *',
    });

    it('says so when the conversation is evicted', async () => {
      const page = await browser.newPage();
      await page.goto(`${server().baseUrl}/`);
      await page.click('#start');
      await page.locator('#status[data-state="evicted"]').waitFor({ timeout: 10_000 });
      expect(await page.locator('#status').textContent()).toContain('Evicted');
      await page.close();
    });
  });
});
