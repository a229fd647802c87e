import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { findRoot } from './generated-docs';

interface Document {
  servers: { url: string }[];
  tags: { name: string }[];
  paths: Record<string, Record<string, { security?: unknown[] }>>;
  components: { securitySchemes: Record<string, Record<string, unknown>> };
}

/** The committed document: `npm run docs:check` holds it equal to what the app serves. */
const root = findRoot();
const document = JSON.parse(readFileSync(path.join(root, 'docs/openapi.json'), 'utf8')) as Document;

describe('the OpenAPI document (docs/openapi.json)', () => {
  jest.setTimeout(60_000);

  it("passes Redocly's recommended lint, offline and with no usage data sent", () => {
    const cli = path.join(path.dirname(require.resolve('@redocly/cli/package.json')), 'bin/cli.js');
    const run = spawnSync(process.execPath, [cli, 'lint', '--format=summary'], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
    });
    // The whole output on failure: which rule, where.
    expect({ status: run.status, output: `${run.stdout}${run.stderr}` }).toMatchObject({
      status: 0,
      output: expect.stringContaining('Your API description is valid') as unknown,
    });
  });

  it('describes the bearer credentials as opaque, not JWT', () => {
    const bearer = document.components.securitySchemes.bearer;
    expect(bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(bearer.bearerFormat).toBeUndefined();
    expect(bearer.description).toMatch(/opaque/);
  });

  it('lists the conversations tag first, names a server, and leaves the health probes public', () => {
    expect(document.tags.map((tag) => tag.name)).toEqual(['conversations', 'operations']);
    expect(document.servers.length).toBeGreaterThan(0);
    for (const probe of ['/health/live', '/health/ready']) {
      expect(document.paths[probe].get.security).toEqual([]);
    }
  });
});
