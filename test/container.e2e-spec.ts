import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { requestJson, requestText, ServerProcess, spawnServer } from './utils/spawn-server';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..');

/** The Dockerfile's runtime stage: the lines after its last FROM. */
async function runtimeStage(): Promise<string[]> {
  const lines = (await readFile(path.join(ROOT, 'Dockerfile'), 'utf8'))
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  const from = lines.map((line) => line.startsWith('FROM ')).lastIndexOf(true);
  return lines.slice(from);
}

describe('the container recipe (not built here: no Docker engine)', () => {
  it('runs node dist/main as a non-root user on Node 26 slim, with production dependencies only', async () => {
    const stage = await runtimeStage();
    const froms = (await readFile(path.join(ROOT, 'Dockerfile'), 'utf8')).match(/^FROM .*/gm);
    expect(froms).toEqual(['FROM node:26-slim AS build', 'FROM node:26-slim']);
    expect(stage).toContain(
      'RUN npm ci --omit=dev --omit=optional --no-audit --no-fund && npm cache clean --force',
    );
    expect(stage).toContain('COPY --from=build /app/dist ./dist');
    expect(stage.find((line) => line.startsWith('USER '))).toBe('USER node');
    expect(stage[stage.length - 1]).toBe('CMD ["node", "dist/main"]');
    expect(stage.find((line) => line.startsWith('HEALTHCHECK '))).toContain('/health/live');
  });
});

/**
 * What the image's runtime stage holds: package.json, the lock file, `npm ci --omit=dev
 * --omit=optional` (TypeScript is an optional peer of @nestjs/swagger 12, which --omit=dev alone
 * installs), and the built dist/. A runtime dependency left in devDependencies fails here.
 */
describe('a production install (npm ci --omit=dev --omit=optional plus dist/) starts and serves', () => {
  jest.setTimeout(240_000);
  let dir: string;
  let server: ServerProcess;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'chat-prod-install-'));
    await Promise.all([
      cp(path.join(ROOT, 'package.json'), path.join(dir, 'package.json')),
      cp(path.join(ROOT, 'package-lock.json'), path.join(dir, 'package-lock.json')),
      cp(path.join(ROOT, 'dist'), path.join(dir, 'dist'), { recursive: true }),
    ]);
    // As the Dockerfile does; --prefer-offline only saves time when the cache has the files.
    await run(
      'npm',
      ['ci', '--omit=dev', '--omit=optional', '--no-audit', '--no-fund', '--prefer-offline'],
      {
        cwd: dir,
        env: { ...process.env, NODE_ENV: 'production' },
        timeout: 200_000,
      },
    );
    server = await spawnServer({ WORKERS: '2' }, { main: path.join(dir, 'dist', 'main.js') });
  }, 240_000);

  afterAll(async () => {
    await server?.stop();
    if (dir) {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('has no development dependency installed', () => {
    for (const dev of ['typescript', 'jest', '@nestjs/cli', 'playwright-core', 'supertest']) {
      expect(existsSync(path.join(dir, 'node_modules', dev))).toBe(false);
    }
    expect(existsSync(path.join(dir, 'node_modules', '@nestjs', 'core'))).toBe(true);
  });

  it('serves the API, the docs, the console, health and metrics', async () => {
    expect(server.child.pid).toBeDefined();
    const created = await requestJson<{ id: string }>(server.baseUrl, 'POST', '/api/conversations');
    expect(created.status).toBe(201);
    const posted = await requestJson(
      server.baseUrl,
      'POST',
      `/api/conversations/${created.body.id}/messages`,
      { sender: 'customer', content: 'hello from a production install' },
    );
    expect(posted.status).toBe(201);
    for (const [route, type] of [
      ['/health/live', /json/],
      ['/health/ready', /json/],
      ['/docs', /html/],
      ['/docs/swagger-ui-bundle.js', /javascript/],
      ['/docs-json', /json/],
      ['/', /html/],
      ['/console/console.js', /javascript/],
      ['/metrics', /text\/plain/],
    ] as const) {
      const res = await requestText(server.baseUrl, 'GET', route);
      expect([route, res.status]).toEqual([route, 200]);
      expect(res.headers['content-type']).toMatch(type);
    }
  });

  it("the Dockerfile's HEALTHCHECK command passes against it, and fails with nothing listening", async () => {
    const healthcheck = (await runtimeStage()).find((line) => line.startsWith('HEALTHCHECK '));
    const argv = JSON.parse(/CMD (\[.*\])$/.exec(healthcheck ?? '')?.[1] ?? 'null') as string[];
    expect(argv[0]).toBe('node');
    const probe = (port: number) =>
      run(process.execPath, argv.slice(1), { env: { PATH: process.env.PATH, PORT: String(port) } });
    await expect(probe(server.port)).resolves.toBeDefined();
    const { freePort } = await import('./utils/spawn-server');
    await expect(probe(await freePort())).rejects.toMatchObject({ code: 1 });
  });
});
