import type { Browser } from 'playwright-core';
import { describeWithBrowser, launchChromium } from './utils/browser';
import { requestJson, useServer } from './utils/spawn-server';

/** A page that follows one conversation with EventSource and lists what arrives. */
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>events</title>
<ul id="messages"></ul>
<p id="status">connecting</p>
<script>
  const id = new URLSearchParams(location.search).get('conversation');
  const source = new EventSource('/api/conversations/' + id + '/events');
  source.onopen = () => { document.getElementById('status').textContent = 'open'; };
  source.addEventListener('message.created', (event) => {
    const item = document.createElement('li');
    item.textContent = JSON.parse(event.data).content;
    item.dataset.seq = event.lastEventId;
    document.getElementById('messages').append(item);
  });
</script>`;

describeWithBrowser('EventSource in headless Chromium (built server, WORKERS=2)', () => {
  jest.setTimeout(60_000);
  const server = useServer({ WORKERS: '2' });
  let browser: Browser;

  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('shows a message posted by the test as it arrives', async () => {
    const { baseUrl } = server();
    const created = await requestJson<{ id: string }>(baseUrl, 'POST', '/api/conversations');
    const page = await browser.newPage();
    // The page is the test's own, served at the server's origin so that EventSource may connect.
    await page.route(`${baseUrl}/test-page**`, (route) =>
      route.fulfill({ contentType: 'text/html', body: PAGE }),
    );
    await page.goto(`${baseUrl}/test-page?conversation=${created.body.id}`);
    await page.locator('#status', { hasText: 'open' }).waitFor({ timeout: 5_000 });

    const posted = await requestJson(
      baseUrl,
      'POST',
      `/api/conversations/${created.body.id}/messages`,
      { sender: 'customer', content: 'Hello from the test <b>not bold</b>' },
    );
    expect(posted.status).toBe(201);

    const item = page.locator('#messages li');
    await item.first().waitFor({ timeout: 5_000 });
    expect(await item.allTextContents()).toEqual(['Hello from the test <b>not bold</b>']);
    expect(await item.first().getAttribute('data-seq')).toBe('1');
    await page.close();
  });
});
