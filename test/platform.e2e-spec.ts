import { mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { openEventStream } from './utils/event-stream';
import { describeWithRedis } from './utils/redis';
import { requestJson, requestText, ServerProcess, spawnServer } from './utils/spawn-server';

const ROOT = path.resolve(__dirname, '..');
/** The flag jest's own node needs to load NestJS 12's ES modules; a server must never carry it. */
const JEST_FLAG = '--experimental-vm-modules';

async function processArgs(pid: number): Promise<string[]> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
}

async function processNodeOptions(pid: number): Promise<string> {
  const environ = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0');
  return environ.find((entry) => entry.startsWith('NODE_OPTIONS='))?.slice(13) ?? '';
}

/** [major, minor] of a version such as v26.12.1 or >=24.9. */
function majorMinor(version: string): [number, number] {
  const [major, minor] = /(\d+)\.(\d+)/.exec(version)?.slice(1).map(Number) ?? [NaN, NaN];
  return [major, minor];
}

function atLeast(version: string, floor: string): boolean {
  const [major, minor] = majorMinor(version);
  const [floorMajor, floorMinor] = majorMinor(floor);
  return major > floorMajor || (major === floorMajor && minor >= floorMinor);
}

describe('the runtime a server runs on (built server, WORKERS=2)', () => {
  jest.setTimeout(60_000);
  let server: ServerProcess;

  beforeAll(async () => {
    server = await spawnServer({ WORKERS: '2' });
  });
  afterAll(() => server?.stop());

  it('runs on a Node within package.json engines, the one first on the PATH', async () => {
    const { engines } = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as {
      engines: { node: string };
    };
    expect(engines.node).toBe('>=24.9');
    expect(atLeast(process.version, engines.node.slice(2))).toBe(true);
    // What the primary says of itself, as a worker's metrics report it.
    const metrics = await requestText(server.baseUrl, 'GET', '/metrics');
    expect(metrics.text).toContain(`nodejs_version_info{version="${process.version}"`);
  });

  it('starts the primary and both workers with that node binary, without the jest flag', async () => {
    const pids = [server.child.pid as number, ...server.workerPids()];
    expect(pids).toHaveLength(3);
    const binary = realpathSync(process.execPath);
    for (const pid of pids) {
      expect(await readlink(`/proc/${pid}/exe`)).toBe(binary);
      const args = await processArgs(pid);
      expect(args.join(' ')).not.toContain(JEST_FLAG);
      expect(await processNodeOptions(pid)).not.toContain(JEST_FLAG);
    }
  });
});

/** A post whose headers are sent now and whose body waits for `finish`. */
function postInFlight(baseUrl: string, id: string, content: string) {
  const body = JSON.stringify({ sender: 'agent', content });
  const request = http.request(`${baseUrl}/api/conversations/${id}/messages`, {
    method: 'POST',
    agent: false,
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
  });
  request.write(body.slice(0, 10));
  const status = new Promise<number>((resolve, reject) => {
    request.on('response', (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    request.on('error', reject);
  });
  return { finish: () => request.end(body.slice(10)), status };
}

/**
 * A GET whose request line and headers are sent but for the blank line that ends them: the
 * connection is busy (not idle, so a drain keeps it), and the request is handled only once
 * `finish` sends the rest. `answer` is the whole raw answer, read until the server closes.
 */
function getHeld(baseUrl: string, route: string) {
  const { hostname, port } = new URL(baseUrl);
  const socket = net.connect(Number(port), hostname);
  socket.write(`GET ${route} HTTP/1.1\r\nHost: ${hostname}\r\n`);
  const answer = new Promise<string>((resolve, reject) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
  return { finish: () => socket.write('Connection: close\r\n\r\n'), answer };
}

/**
 * The order a stop keeps: event streams end first (they never fall idle), requests already
 * accepted finish with their store, and only then is the snapshot written and the store's
 * connections closed (NestJS 12 runs lifecycle hooks by module depth: none of these may depend
 * on that order).
 */
describe('shutdown order', () => {
  jest.setTimeout(60_000);

  it('in memory (WORKERS=2, SNAPSHOT_PATH): streams end, requests drain, then the snapshot is written', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'chat-stop-order-'));
    const file = path.join(dir, 'store.ndjson');
    const server = await spawnServer({ WORKERS: '2', SNAPSHOT_PATH: file });
    try {
      const { body } = await requestJson<{ id: string }>(
        server.baseUrl,
        'POST',
        '/api/conversations',
      );
      const stream = await openEventStream(server.baseUrl, `/api/conversations/${body.id}/events`);
      const inFlight = postInFlight(server.baseUrl, body.id, 'accepted before the stop');
      await new Promise((resolve) => setTimeout(resolve, 300));

      const order: string[] = [];
      void stream.ended.then(() => order.push('stream ended'));
      server.child.kill('SIGTERM');
      await server.waitFor(/Shutdown ordered by the primary: draining/, 2);
      await stream.ended;
      inFlight.finish();
      expect(await inFlight.status).toBe(201);
      order.push('request answered');
      const { code } = await server.exited;
      expect(code).toBe(0);

      expect(order).toEqual(['stream ended', 'request answered']);
      // Written after the drain: the snapshot holds the message the drained request stored.
      const snapshot = await readFile(file, 'utf8');
      expect(snapshot).toContain('accepted before the stop');
      const output = server.output();
      expect(output.indexOf('Wrote 1 conversation(s)')).toBeGreaterThan(
        output.lastIndexOf('Shutdown ordered by the primary: draining'),
      );
      expect(server.lines(/ERROR|FATAL/)).toEqual([]);
    } finally {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('WORKERS=0: during the drain, live answers 200 and ready 503 shutting_down', async () => {
    const server = await spawnServer({ WORKERS: '0' });
    try {
      const live = getHeld(server.baseUrl, '/health/live');
      const ready = getHeld(server.baseUrl, '/health/ready');
      await new Promise((resolve) => setTimeout(resolve, 300));

      server.child.kill('SIGTERM');
      await server.waitFor(/SIGTERM received: draining/);
      await new Promise((resolve) => setTimeout(resolve, 300));
      live.finish();
      ready.finish();

      const liveAnswer = await live.answer;
      expect(liveAnswer).toMatch(/^HTTP\/1\.1 200 /);
      expect(liveAnswer).toContain('{"status":"ok","info":{},"error":{},"details":{}}');
      const readyAnswer = await ready.answer;
      expect(readyAnswer).toMatch(/^HTTP\/1\.1 503 /);
      expect(readyAnswer).toContain('"status":"shutting_down"');
      expect((await server.exited).code).toBe(0);
    } finally {
      await server.stop();
    }
  });
});

describeWithRedis('shutdown order on Redis', (redis) => {
  jest.setTimeout(60_000);

  it('WORKERS=0: streams end, requests drain, then the connection closes', async () => {
    const env = {
      WORKERS: '0',
      STORE: 'redis',
      REDIS_URL: redis().url,
      REDIS_KEY_PREFIX: redis().newPrefix(),
    };
    const server = await spawnServer(env);
    let id = '';
    try {
      ({
        body: { id },
      } = await requestJson<{ id: string }>(server.baseUrl, 'POST', '/api/conversations'));
      const stream = await openEventStream(server.baseUrl, `/api/conversations/${id}/events`);
      const inFlight = postInFlight(server.baseUrl, id, 'accepted before the stop');
      await new Promise((resolve) => setTimeout(resolve, 300));

      server.child.kill('SIGTERM');
      await server.waitFor(/SIGTERM received: draining/);
      await stream.ended;
      inFlight.finish();
      // The store was still open for it: closed only after the drain.
      expect(await inFlight.status).toBe(201);
      expect((await server.exited).code).toBe(0);
      expect(server.lines(/ERROR|FATAL|store_unavailable/)).toEqual([]);
    } finally {
      await server.stop();
    }
    // What the drained request stored is in Redis, as a new server on it reads.
    const reader = await spawnServer(env);
    try {
      const history = await requestText(reader.baseUrl, 'GET', `/api/conversations/${id}`);
      expect(history.status).toBe(200);
      expect(history.text).toContain('accepted before the stop');
    } finally {
      await reader.stop();
    }
  });
});
