import { AppLogger } from './logger';

function capture(run: () => void): string[] {
  const lines: string[] = [];
  const stdout = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    lines.push(String(chunk));
    return true;
  });
  const stderr = jest.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    lines.push(String(chunk));
    return true;
  });
  try {
    run();
  } finally {
    stdout.mockRestore();
    stderr.mockRestore();
  }
  return lines;
}

describe('AppLogger', () => {
  it("writes Nest's module and route lines at debug, everything else at its own level", () => {
    const atLog = new AppLogger({ role: 'server' }, { LOG_LEVEL: 'log', LOG_FORMAT: 'json' });
    const quiet = capture(() => {
      atLog.log('AppModule dependencies initialized', 'InstanceLoader');
      atLog.log('Mapped {/api/conversations, POST} route', 'RouterExplorer');
      atLog.log('ConversationsController {/api/conversations}:', 'RoutesResolver');
      atLog.log('Listening on http://localhost:3000', 'Bootstrap');
    });
    expect(quiet.map((line) => (JSON.parse(line) as { context: string }).context)).toEqual([
      'Bootstrap',
    ]);

    const atDebug = new AppLogger({ role: 'server' }, { LOG_LEVEL: 'debug', LOG_FORMAT: 'json' });
    const [line] = capture(() =>
      atDebug.log('Mapped {/api/conversations, POST} route', 'RouterExplorer'),
    );
    expect(JSON.parse(line)).toMatchObject({ level: 'debug', context: 'RouterExplorer' });
  });

  it('writes one JSON object per line with time, level, role, worker id and context', () => {
    const logger = new AppLogger(
      { role: 'worker', workerId: 3 },
      { LOG_LEVEL: 'log', LOG_FORMAT: 'json' },
    );

    const [line] = capture(() => logger.warn('disk is slow', 'Store'));

    expect(line.endsWith('\n')).toBe(true);
    expect(line.trim()).not.toContain('\n');
    const parsed = JSON.parse(line) as Record<string, unknown>;
    expect(parsed).toEqual({
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      level: 'warn',
      role: 'worker',
      workerId: 3,
      pid: process.pid,
      context: 'Store',
      message: 'disk is slow',
    });
  });

  it("puts an event's fields at the top level, without letting them replace the line's own", () => {
    const logger = new AppLogger({ role: 'server' }, { LOG_LEVEL: 'log', LOG_FORMAT: 'json' });

    const [line] = capture(() =>
      logger.log({ message: 'GET / 200', requestId: 'r-1', status: 200, level: 'fake' }, 'Http'),
    );

    expect(JSON.parse(line)).toEqual({
      time: expect.any(String),
      level: 'log',
      role: 'server',
      pid: process.pid,
      context: 'Http',
      message: 'GET / 200',
      requestId: 'r-1',
      status: 200,
    });
  });

  it('writes errors with their stack to stderr', () => {
    const logger = new AppLogger({ role: 'primary' }, { LOG_LEVEL: 'error', LOG_FORMAT: 'json' });

    const [line] = capture(() => logger.error('boom', 'Error: boom\n    at x', 'Store'));

    expect(JSON.parse(line)).toMatchObject({
      level: 'error',
      message: 'boom',
      stack: 'Error: boom\n    at x',
    });
  });

  it('writes nothing below LOG_LEVEL, and nothing at all when silent', () => {
    const quiet = new AppLogger({ role: 'server' }, { LOG_LEVEL: 'warn', LOG_FORMAT: 'json' });
    const silent = new AppLogger({ role: 'server' }, { LOG_LEVEL: 'silent', LOG_FORMAT: 'json' });

    expect(capture(() => quiet.log('hidden'))).toEqual([]);
    expect(capture(() => silent.error('hidden'))).toEqual([]);
  });

  it('writes readable lines naming the process and the request in pretty mode', () => {
    const logger = new AppLogger(
      { role: 'worker', workerId: 2 },
      { LOG_LEVEL: 'log', LOG_FORMAT: 'pretty' },
    );

    const [line] = capture(() => logger.log({ message: 'GET / 200', requestId: 'r-9' }, 'Http'));

    expect(line).toMatch(/^\[worker 2\] \d+ .* LOG \[Http\] GET \/ 200 \(request r-9\)\n$/);
  });
});
