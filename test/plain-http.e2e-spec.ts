/// <reference lib="dom" />
import type { Browser, Page } from 'playwright-core';
import { describeWithBrowser, launchChromium } from './utils/browser';
import { useServer } from './utils/spawn-server';

/**
 * Every file a page loads, and what went wrong with any: a failed request (a refused https
 * upgrade shows here) or a 4xx/5xx answer.
 */
function watchRequests(page: Page): { urls: string[]; problems: string[] } {
  const seen = { urls: [] as string[], problems: [] as string[] };
  page.on('request', (request) => seen.urls.push(request.url()));
  page.on('requestfailed', (request) =>
    seen.problems.push(`${request.url()} failed: ${request.failure()?.errorText}`),
  );
  page.on('response', (response) => {
    if (response.status() >= 400) {
      seen.problems.push(`${response.url()} answered ${response.status()}`);
    }
  });
  return seen;
}

describeWithBrowser('plain HTTP under a host name that is not localhost (http://chat.test)', () => {
  jest.setTimeout(60_000);
  const server = useServer({ WORKERS: '2' });
  let browser: Browser;
  // Browsers exempt only localhost from upgrade-insecure-requests: a name is what shows it.
  const origin = () => `http://chat.test:${server().port}`;

  beforeAll(async () => {
    browser = await launchChromium(['--host-resolver-rules=MAP chat.test 127.0.0.1']);
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('/docs shows every operation, and "Try it out" on create answers 201', async () => {
    const page = await browser.newPage();
    const seen = watchRequests(page);
    await page.goto(`${origin()}/docs`);
    const operations = page.locator('.opblock');
    await operations.first().waitFor({ timeout: 10_000 });
    // The six API routes, health and metrics: at least the six.
    expect(await operations.count()).toBeGreaterThanOrEqual(6);

    const create = page.locator('#operations-conversations-ConversationsController_create');
    await create.locator('.opblock-summary').click();
    await create.locator('button.try-out__btn').click();
    await create.locator('button.execute').click();
    const status = create.locator('.live-responses-table .response .response-col_status');
    await status.first().waitFor({ timeout: 8_000 });
    expect((await status.first().textContent())?.trim()).toBe('201');

    expect(seen.problems).toEqual([]);
    expect(seen.urls.filter((url) => !url.startsWith(`${origin()}/`))).toEqual([]);
    await page.close();
  });

  it('the console loads its style and script and reaches "connected"', async () => {
    const page = await browser.newPage();
    const seen = watchRequests(page);
    await page.goto(`${origin()}/`);
    await page.click('#start');
    await page.locator('#status[data-state="connected"]').waitFor({ timeout: 10_000 });
    // The stylesheet applied: the panes are laid out, not left as unstyled blocks.
    const styled = await page.evaluate(
      () => document.styleSheets.length > 0 && document.styleSheets[0].cssRules.length > 0,
    );
    expect(styled).toBe(true);

    expect(seen.urls).toEqual(
      expect.arrayContaining([
        `${origin()}/`,
        `${origin()}/console/console.css`,
        `${origin()}/console/console.js`,
      ]),
    );
    expect(seen.problems).toEqual([]);
    expect(seen.urls.filter((url) => !url.startsWith(`${origin()}/`))).toEqual([]);
    await page.close();
  });
});
