import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CONFIG_DOC, findRoot, GeneratedDoc, OPENAPI_DOC } from './generated-docs';

/**
 * `node dist/docs-tools/generate-docs.js config | openapi | check`, run by `npm run docs:config`,
 * `docs:openapi` and `docs:check` (each builds first, so the app it reads is the current one).
 * config and openapi write their file; check writes nothing and exits 1 when a committed file
 * differs from what its command would write now, naming the command that refreshes it.
 */
async function main(command: string | undefined): Promise<number> {
  const root = findRoot();
  const docs: Record<string, GeneratedDoc> = { config: CONFIG_DOC, openapi: OPENAPI_DOC };
  if (command && docs[command]) {
    const doc = docs[command];
    const target = path.join(root, doc.file);
    const content = await doc.render(root);
    const unchanged = existsSync(target) && readFileSync(target, 'utf8') === content;
    if (!unchanged) {
      writeFileSync(target, content);
    }
    console.log(`${doc.file} ${unchanged ? 'is up to date' : 'written'}`);
    return 0;
  }
  if (command === 'check') {
    let stale = 0;
    for (const doc of Object.values(docs)) {
      const target = path.join(root, doc.file);
      const content = await doc.render(root);
      if (existsSync(target) && readFileSync(target, 'utf8') === content) {
        console.log(`${doc.file} is up to date`);
      } else {
        stale += 1;
        console.error(
          `${doc.file} is stale: it is not what its source gives now. Run ${doc.command} and commit the result.`,
        );
      }
    }
    return stale > 0 || !lintOpenApi(root) ? 1 : 0;
  }
  console.error('usage: generate-docs config | openapi | check');
  return 2;
}

/**
 * `redocly lint` with the recommended rules (redocly.yaml; the problems it may ignore are in
 * .redocly.lint-ignore.yaml, each with its reason) on the committed OpenAPI document. Local
 * only: no usage data and no update check, so it needs no network.
 */
function lintOpenApi(root: string): boolean {
  const cli = path.join(path.dirname(require.resolve('@redocly/cli/package.json')), 'bin/cli.js');
  const run = spawnSync(process.execPath, [cli, 'lint', '--format=summary'], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
  });
  if (run.status !== 0) {
    console.error(
      `${OPENAPI_DOC.file} fails redocly lint: fix its source, then run ${OPENAPI_DOC.command}.`,
    );
    return false;
  }
  return true;
}

main(process.argv[2]).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exitCode = 1;
  },
);
