/// <reference lib="dom" />
// Functions passed to page.evaluate and waitForFunction run in the browser.
import type { Browser, Page } from 'playwright-core';
import { describeWithBrowser, launchChromium } from './utils/browser';
import { requestText, ServerProcess, useServer } from './utils/spawn-server';

const API_KEY = 'console-inbox-key-0123456789';

// The console's inbox in a browser: the agent side lists the open conversations from the
// inbox feed, opens one, claims and resolves it. The rest of the console: console.e2e-spec.ts.
// Each configuration starts its own server, so that its inbox holds only its tests'
// conversations.

interface Summary {
  id: string;
  status: string;
  assignee: string | null;
}

/** One JSON request to the built server, with the API key when one is given. */
async function call<T>(
  server: ServerProcess,
  method: string,
  path: string,
  body?: unknown,
  key?: string,
): Promise<{ status: number; body: T }> {
  const res = await requestText(server.baseUrl, method, path, {
    body,
    headers: key ? { authorization: `Bearer ${key}` } : {},
  });
  return { status: res.status, body: (res.text ? JSON.parse(res.text) : undefined) as T };
}

async function create(server: ServerProcess, body?: unknown, key?: string): Promise<string> {
  const created = await call<{ id: string }>(server, 'POST', '/api/conversations', body, key);
  expect(created.status).toBe(201);
  return created.body.id;
}

async function post(
  server: ServerProcess,
  id: string,
  sender: 'customer' | 'agent',
  content: string,
  key?: string,
): Promise<void> {
  const posted = await call(
    server,
    'POST',
    `/api/conversations/${id}/messages`,
    { sender, content },
    key,
  );
  expect(posted.status).toBe(201);
}

/** Waits until the inbox lists exactly these conversations, top to bottom. */
async function waitForInbox(page: Page, ids: string[]): Promise<void> {
  await page.waitForFunction(
    (want) =>
      JSON.stringify(
        Array.from(
          document.querySelectorAll<HTMLElement>('#inbox .inbox-item'),
          (item) => item.dataset.id,
        ),
      ) === want,
    JSON.stringify(ids),
    { timeout: 8_000 },
  );
}

/** A row of the inbox, by conversation id. */
const row = (page: Page, id: string) => page.locator(`#inbox .inbox-item[data-id="${id}"]`);

/** Waits until the row's part (`.unread`, `.assignee`, …) reads `text`. */
async function waitForRowText(page: Page, id: string, part: string, text: string): Promise<void> {
  await row(page, id).locator(part, { hasText: text }).waitFor({ timeout: 8_000 });
  expect(await row(page, id).locator(part).textContent()).toBe(text);
}

/** Waits until the agent pane's line on the open conversation reads `text`. */
async function waitForAssignment(page: Page, text: string): Promise<void> {
  await page.waitForFunction(
    (want) => document.querySelector('#agent .assignment-text')?.textContent === want,
    text,
    { timeout: 8_000 },
  );
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeWithBrowser('the console inbox in headless Chromium (built server, WORKERS=2)', () => {
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

    it('lists the open conversations live: the longest waiting first, with unread counts and waits', async () => {
      const first = await create(server(), { customer: { name: 'Ada' } });
      await pause(20); // a later lastActivityAt
      const second = await create(server());
      const page = await browser.newPage();
      const dialogs: string[] = [];
      page.on('dialog', (dialog) => {
        dialogs.push(dialog.message());
        void dialog.dismiss();
      });
      await page.goto(`${server().baseUrl}/`);
      await page.locator('#inbox .inbox-status[data-state="live"]').waitFor({ timeout: 8_000 });
      // Nobody waits: the latest activity first.
      await waitForInbox(page, [second, first]);
      expect(await row(page, first).locator('.who').textContent()).toBe(
        `Ada · ${first.slice(0, 8)}`,
      );
      expect(await row(page, first).locator('.preview').textContent()).toBe('No messages yet.');
      expect(await row(page, first).locator('.waited').textContent()).toBe('not waiting');
      expect(await row(page, first).locator('.unread').textContent()).toBe('0 unread');

      // A customer writes: the row moves up, its unread count rises, its wait starts.
      const hostile = 'Where is my parcel? <img src=x onerror=alert(1)>';
      await post(server(), first, 'customer', hostile);
      await waitForInbox(page, [first, second]);
      await waitForRowText(page, first, '.unread', '1 unread');
      expect(await row(page, first).locator('.preview').textContent()).toBe(`customer: ${hostile}`);
      expect(await row(page, first).locator('.waited').textContent()).toMatch(/^waiting \d+ s$/);
      expect(await row(page, first).locator('.assignee').textContent()).toBe('unassigned');
      expect(await row(page, first).locator('.row-status').textContent()).toBe('open');
      expect(await page.locator('#inbox img').count()).toBe(0);
      // The wait is counted as it goes.
      await page.waitForFunction(
        (selector) => {
          const match = /^waiting (\d+) s$/.exec(
            document.querySelector(selector)?.textContent ?? '',
          );
          return match !== null && Number(match[1]) >= 2;
        },
        `#inbox .inbox-item[data-id="${first}"] .waited`,
        { timeout: 8_000 },
      );

      // The second one's customer writes twice: it waits less, so it stays second.
      await post(server(), second, 'customer', 'Hello?');
      await post(server(), second, 'customer', 'Anyone there?');
      await waitForRowText(page, second, '.unread', '2 unread');
      expect(await row(page, second).locator('.preview').textContent()).toBe(
        'customer: Anyone there?',
      );
      await waitForInbox(page, [first, second]);

      // The agent answers the first: it no longer waits, and goes below the queue.
      await post(server(), first, 'agent', 'On its way.');
      await waitForRowText(page, first, '.waited', 'not waiting');
      await waitForInbox(page, [second, first]);

      // Pending stays in the inbox; snoozed leaves it (until it wakes).
      const patch = (body: unknown) =>
        call(server(), 'PATCH', `/api/conversations/${second}`, body);
      expect((await patch({ status: 'pending' })).status).toBe(200);
      await waitForRowText(page, second, '.row-status', 'pending');
      expect((await patch({ status: 'snoozed', snoozedUntil: Date.now() + 60_000 })).status).toBe(
        200,
      );
      await waitForInbox(page, [first]);
      expect(dialogs).toEqual([]);
      await page.close();
    });

    it('opens a row in the agent pane, claims and resolves it; another agent’s claim is refused', async () => {
      const id = await create(server());
      await post(server(), id, 'customer', 'My card was charged twice.');
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(`${server().baseUrl}/`);
      await waitForRowText(page, id, '.unread', '1 unread');

      await row(page, id).locator('button').click();
      expect(new URL(page.url()).hash).toBe(`#${id}`);
      await page
        .locator('#agent .messages .text', { hasText: 'My card was charged twice.' })
        .waitFor({ timeout: 8_000 });
      expect(await row(page, id).getAttribute('aria-current')).toBe('true');
      // The agent pane, visible, reads the message: the count falls.
      await waitForRowText(page, id, '.unread', '0 unread');
      await waitForAssignment(page, 'open · unassigned');

      // No agent name yet: Claim says where to give one.
      await page.click('#claim');
      expect(await page.locator('#agent .assignment-note').textContent()).toContain(
        'Enter your agent name',
      );
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('agent-name');

      await page.fill('#agent-name', 'ada');
      await page.click('#claim');
      await waitForAssignment(page, 'open · assigned to you (ada)');
      expect(await page.isDisabled('#claim')).toBe(true);
      await waitForRowText(page, id, '.assignee', 'assigned to ada');
      expect(await page.locator('#agent .assignment-note').isHidden()).toBe(true);

      await page.click('#resolve');
      await waitForAssignment(page, 'resolved · assigned to you (ada)');
      await row(page, id).waitFor({ state: 'detached', timeout: 8_000 });
      expect(await page.isDisabled('#resolve')).toBe(true);
      const stored = await call<Summary>(server(), 'GET', `/api/conversations/${id}`);
      expect(stored.body).toMatchObject({ status: 'resolved', assignee: 'ada' });

      // Another agent, in another browser context, tries to take it.
      const other = await browser.newContext();
      const otherPage = await other.newPage();
      await otherPage.goto(`${server().baseUrl}/#${id}`);
      expect(await otherPage.inputValue('#agent-name')).toBe('');
      await waitForAssignment(otherPage, 'resolved · assigned to ada');
      await otherPage.fill('#agent-name', 'bob');
      await otherPage.click('#claim');
      const note = otherPage.locator('#agent .assignment-note');
      await note.waitFor({ timeout: 8_000 });
      expect(await note.textContent()).toBe('Not claimed: assigned to ada.');
      expect((await call<Summary>(server(), 'GET', `/api/conversations/${id}`)).body.assignee).toBe(
        'ada',
      );
      await other.close();

      // The name is kept; the customer writes again and the conversation is back, still ada's.
      await page.reload();
      expect(await page.inputValue('#agent-name')).toBe('ada');
      await page.fill('#customer .composer input', 'It happened again.');
      await page.click('#customer .composer button');
      await waitForRowText(page, id, '.row-status', 'open');
      expect(await row(page, id).locator('.assignee').textContent()).toBe('assigned to ada');
      await waitForAssignment(page, 'open · assigned to you (ada)');
      await context.close();
    });

    it('lists again when its feed comes back after the workers die', async () => {
      const page = await browser.newPage();
      const lists: string[] = [];
      page.on('request', (request) => {
        if (new URL(request.url()).pathname === '/api/conversations') {
          lists.push(request.url());
        }
      });
      await page.goto(`${server().baseUrl}/`);
      const live = page.locator('#inbox .inbox-status[data-state="live"]');
      await live.waitFor({ timeout: 8_000 });
      const kept = await create(server());
      await row(page, kept).waitFor({ timeout: 8_000 });
      const listed = lists.length;

      const serving = server().lines(/Serving on port/).length;
      for (const pid of server().workerPids()) {
        process.kill(pid, 'SIGKILL');
      }
      await page
        .locator('#inbox .inbox-status[data-state="reconnecting"]')
        .waitFor({ timeout: 8_000 });
      await server().waitFor(/Serving on port/, serving + 2, 20_000);
      // Changed while the feed may be away: the list on its `reset` shows them.
      const added = await create(server());
      await post(server(), added, 'customer', 'Anyone?');
      const resolved = await call(server(), 'PATCH', `/api/conversations/${kept}`, {
        status: 'resolved',
      });
      expect(resolved.status).toBe(200);

      await live.waitFor({ timeout: 10_000 });
      await waitForRowText(page, added, '.unread', '1 unread');
      await row(page, kept).waitFor({ state: 'detached', timeout: 8_000 });
      expect(lists.length).toBeGreaterThan(listed);
      await page.close();
    });
  });

  describe('with API_KEYS set', () => {
    const server = useServer({ WORKERS: '2', API_KEYS: API_KEY });

    it('follows the feed with the pasted key, and says why without one', async () => {
      const before = await create(server(), undefined, API_KEY);
      const page = await browser.newPage();
      const feeds: string[] = [];
      page.on('request', (request) => {
        if (new URL(request.url()).pathname === '/api/conversations/events') {
          feeds.push(request.url());
        }
      });
      await page.goto(`${server().baseUrl}/`);
      await page
        .locator('#inbox .inbox-status[data-state="error"]', { hasText: '401' })
        .waitFor({ timeout: 8_000 });
      expect(await page.locator('#inbox .inbox-item').count()).toBe(0);

      await page.fill('#api-key', API_KEY);
      await page.locator('#api-key').blur();
      await page.locator('#inbox .inbox-status[data-state="live"]').waitFor({ timeout: 8_000 });
      await waitForInbox(page, [before]);
      expect(feeds.at(-1)).toBe(
        `${server().baseUrl}/api/conversations/events?access_token=${API_KEY}`,
      );

      // Live: a new conversation, then its customer's message.
      const created = await create(server(), undefined, API_KEY);
      await waitForInbox(page, [created, before]);
      await post(server(), before, 'customer', 'Hi', API_KEY);
      await waitForInbox(page, [before, created]);
      await waitForRowText(page, before, '.unread', '1 unread');

      // Claim under the key; a second claim by another name is refused with the holder.
      await row(page, before).locator('button').click();
      await page.fill('#agent-name', 'ada');
      await page.click('#claim');
      await waitForRowText(page, before, '.assignee', 'assigned to ada');
      const refused = await call<{ code: string; assignee: string }>(
        server(),
        'POST',
        `/api/conversations/${before}/claim`,
        { assignee: 'bob' },
        API_KEY,
      );
      expect(refused.status).toBe(409);
      expect(refused.body).toMatchObject({ code: 'already_assigned', assignee: 'ada' });
      await page.click('#resolve');
      await waitForInbox(page, [created]);
      await page.close();
    });
  });
});
