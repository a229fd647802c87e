import { validateConfig } from '../config/app.config';
import {
  checkedBy,
  flag,
  integer,
  matching,
  oneOf,
  text,
  variable,
} from '../config/env-declaration';
import { CronExpressionConstraint, SIZE_PATTERN } from '../config/env-values';
import { readConfigVariables, renderConfigTable } from './config-reference';
import { configVariables, findRoot, replaceBetweenMarkers } from './generated-docs';

const declared = {
  PORT: variable({ takes: integer({ min: 0, max: 65_535 }), default: '3000', group: 'http' }),
  WORKERS: variable({ takes: integer({ min: -1 }), default: '-1', group: 'cluster' }),
  RATE_LIMIT_MAX: variable({
    takes: integer(),
    default: (env) => (env.API_KEYS ? '600' : '0'),
    group: 'rateLimits',
  }),
  STORE: variable({ takes: oneOf(['memory', 'redis']), default: 'memory', group: 'store' }),
  CONSOLE_ENABLED: variable({ takes: flag(), default: 'true', group: 'http' }),
  EVICTION_CRON: variable({
    takes: text(checkedBy(CronExpressionConstraint)),
    default: '0 * * * * *',
    group: 'eviction',
  }),
  BODY_LIMIT: variable({
    takes: text(matching(SIZE_PATTERN, 'must be a size such as 64kb')),
    default: '64kb',
    group: 'http',
  }),
  SNAPSHOT_PATH: variable({ takes: text(), default: '', group: 'snapshot' }),
  LOG_FORMAT: variable({
    takes: oneOf(['json', 'pretty']),
    default: (_env, { stdoutIsTTY }) => (stdoutIsTTY ? 'pretty' : 'json'),
    group: 'observability',
  }),
};

/** The doc comments of `declared`, as the file that declares it holds them. */
const SOURCE = `
export const VARIABLES = {
  /** The HTTP port. */
  PORT: declared.PORT,

  /**
   * Worker processes;
   * 0 runs one process.
   * @default one per CPU core
   */
  WORKERS: declared.WORKERS,

  /** Requests per window. */
  RATE_LIMIT_MAX: declared.RATE_LIMIT_MAX,

  /** Where it lives. */
  STORE: declared.STORE,

  /** The console. */
  CONSOLE_ENABLED: declared.CONSOLE_ENABLED,

  /** The sweep. */
  EVICTION_CRON: declared.EVICTION_CRON,

  /** The body's limit | in bytes. */
  BODY_LIMIT: declared.BODY_LIMIT,

  /** A path. */
  SNAPSHOT_PATH: declared.SNAPSHOT_PATH,

  LOG_FORMAT: declared.LOG_FORMAT,
} satisfies Record<string, unknown>;
`;

describe('readConfigVariables', () => {
  const variables = readConfigVariables(declared, SOURCE);
  const byName = (name: string) => variables.find((variable) => variable.name === name);

  it('lists every property in declaration order', () => {
    expect(variables.map((variable) => variable.name)).toEqual([
      'PORT',
      'WORKERS',
      'RATE_LIMIT_MAX',
      'STORE',
      'CONSOLE_ENABLED',
      'EVICTION_CRON',
      'BODY_LIMIT',
      'SNAPSHOT_PATH',
      'LOG_FORMAT',
    ]);
  });

  it('says what each takes, as its kind says', () => {
    expect(byName('PORT')?.type).toBe('integer, 0 to 65535');
    expect(byName('WORKERS')?.type).toBe('integer, at least -1');
    expect(byName('RATE_LIMIT_MAX')?.type).toBe('integer');
    expect(byName('STORE')?.type).toBe('one of `memory`, `redis`');
    expect(byName('CONSOLE_ENABLED')?.type).toBe('`true` or `false`');
    expect(byName('EVICTION_CRON')?.type).toBe('cron expression (six fields, with seconds)');
    expect(byName('BODY_LIMIT')?.type).toBe('a size such as 64kb');
    expect(byName('SNAPSHOT_PATH')?.type).toBe('string');
  });

  it('gives the declared default, explained or replaced by a @default tag', () => {
    expect(byName('PORT')?.default).toBe('`3000`');
    expect(byName('WORKERS')?.default).toBe('`-1`: one per CPU core');
    expect(byName('RATE_LIMIT_MAX')?.default).toBe('derived (see the description)');
    expect(byName('CONSOLE_ENABLED')?.default).toBe('`true`');
    expect(byName('SNAPSHOT_PATH')?.default).toBe('none');
  });

  it('takes the doc comment, on one line and without its tags', () => {
    expect(byName('WORKERS')?.description).toBe('Worker processes; 0 runs one process.');
    expect(byName('LOG_FORMAT')?.description).toBe('');
  });

  it('escapes pipes in the table', () => {
    expect(renderConfigTable([byName('BODY_LIMIT')!]).split('\n')[2]).toBe(
      "| `BODY_LIMIT` | a size such as 64kb | `64kb` | The body's limit \\| in bytes. |",
    );
  });
});

describe('the configuration reference', () => {
  const root = findRoot();

  it('lists exactly the variables the server reads, each with a doc comment', () => {
    const names = configVariables(root).map((variable) => variable.name);
    expect([...names].sort()).toEqual(Object.keys(validateConfig({})).sort());
  });
});

describe('replaceBetweenMarkers', () => {
  it('keeps the hand-written text around the markers', () => {
    expect(
      replaceBetweenMarkers(
        'intro\n<!-- a -->\nold\n<!-- b -->\nend\n',
        'new',
        '<!-- a -->',
        '<!-- b -->',
        'x.md',
      ),
    ).toBe('intro\n<!-- a -->\nnew\n<!-- b -->\nend\n');
  });

  it('names the file when a marker is missing', () => {
    expect(() =>
      replaceBetweenMarkers('no markers', 'new', '<!-- a -->', '<!-- b -->', 'x.md'),
    ).toThrow('x.md must hold the markers <!-- a --> and <!-- b -->, in that order');
  });
});
