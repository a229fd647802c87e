import { validateConfig } from '../config/app.config';
import { readConfigVariables, renderConfigTable } from './config-reference';
import { configVariables, findRoot, replaceBetweenMarkers } from './generated-docs';

const SOURCE = `
@ValidatorConstraint({ name: 'cronExpression' })
class CronExpressionConstraint {}

export class EnvironmentVariables {
  /** The HTTP port. */
  @int('3000')
  @IsInt()
  @Min(0)
  @Max(65_535)
  PORT: number;

  /**
   * Worker processes;
   * 0 runs one process.
   * @default one per CPU core
   */
  @int('-1')
  @IsInt()
  @Min(-1)
  WORKERS: number;

  /** Requests per window. */
  @int((env) => (env.API_KEYS ? '600' : '0'))
  @IsInt()
  RATE_LIMIT_MAX: number;

  /** Where it lives. */
  @orDefault('memory')
  @IsIn(['memory', 'redis'])
  STORE: 'memory' | 'redis';

  /** The console. */
  @bool('true')
  @IsBoolean()
  CONSOLE_ENABLED: boolean;

  /** The sweep. */
  @orDefault('0 * * * * *')
  @Validate(CronExpressionConstraint)
  EVICTION_CRON: string;

  /** The body's limit | in bytes. */
  @orDefault('64kb')
  @Matches(SIZE_PATTERN, { message: 'must be a size such as 64kb' })
  BODY_LIMIT: string;

  /** A path. */
  @orDefault('')
  @IsString()
  SNAPSHOT_PATH: string;

  @IsIn(['json', 'pretty'])
  LOG_FORMAT: 'json' | 'pretty';
}
`;

describe('readConfigVariables', () => {
  const variables = readConfigVariables(SOURCE);
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

  it('reads what each takes from its validators', () => {
    expect(byName('PORT')?.type).toBe('integer, 0 to 65535');
    expect(byName('WORKERS')?.type).toBe('integer, at least -1');
    expect(byName('RATE_LIMIT_MAX')?.type).toBe('integer');
    expect(byName('STORE')?.type).toBe('one of `memory`, `redis`');
    expect(byName('CONSOLE_ENABLED')?.type).toBe('`true` or `false`');
    expect(byName('EVICTION_CRON')?.type).toBe('cron expression (six fields, with seconds)');
    expect(byName('BODY_LIMIT')?.type).toBe('a size such as 64kb');
    expect(byName('SNAPSHOT_PATH')?.type).toBe('string');
  });

  it('reads the default from the decorator, explained or replaced by a @default tag', () => {
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
