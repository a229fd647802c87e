import { ConsoleLogger, LogLevel } from '@nestjs/common';
import { AppConfig } from '../../config/app.config';

const LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

export function logLevels(level: AppConfig['LOG_LEVEL']): LogLevel[] {
  return level === 'silent' ? [] : LEVELS.slice(0, LEVELS.indexOf(level) + 1);
}

/** Which process of the server wrote a line. */
export interface ProcessIdentity {
  /** The process role (cluster/process-role.ts), written as it is. */
  role: string;
  /** The cluster worker's id; absent outside workers. */
  workerId?: number;
}

/**
 * A log event with fields of its own, passed where a message goes:
 * `logger.log({ message: 'GET /x 200', requestId, status: 200 })`. In JSON logs the fields
 * become top-level keys of the line; in pretty logs the message is printed with the request id.
 */
export interface LogEvent {
  message: string;
  requestId?: string;
  [field: string]: unknown;
}

/** Keys a log event may not overwrite: they belong to the line itself. */
const RESERVED = new Set(['time', 'level', 'role', 'workerId', 'pid', 'context', 'stack']);

function isLogEvent(value: unknown): value is LogEvent {
  return (
    typeof value === 'object' &&
    value !== null &&
    !(value instanceof Error) &&
    typeof (value as LogEvent).message === 'string'
  );
}

/**
 * Nest's own start-up chatter (every module loaded, every route of every worker mapped): at
 * `debug`, so that a start at `log` shows what a person needs.
 */
const STARTUP_CONTEXTS = new Set([
  'NestFactory',
  'InstanceLoader',
  'RoutesResolver',
  'RouterExplorer',
  'NestApplication',
]);

/**
 * Nest's ConsoleLogger, either writing one JSON object per line (`LOG_FORMAT=json`:
 * time, level, role, workerId, pid, context, message and the event's own fields) or readable
 * lines prefixed with the process (`LOG_FORMAT=pretty`: `[worker 2]`).
 */
export class AppLogger extends ConsoleLogger {
  constructor(
    private readonly identity: ProcessIdentity,
    config: Pick<AppConfig, 'LOG_LEVEL' | 'LOG_FORMAT'>,
  ) {
    const json = config.LOG_FORMAT === 'json';
    super({
      json,
      prefix: identity.workerId === undefined ? identity.role : `worker ${identity.workerId}`,
      logLevels: logLevels(config.LOG_LEVEL),
      colors: !json && Boolean(process.stdout.isTTY),
    });
  }

  override log(message: unknown, ...rest: unknown[]): void {
    const context = rest[rest.length - 1];
    if (typeof context === 'string' && STARTUP_CONTEXTS.has(context)) {
      this.debug(message, ...rest);
    } else {
      super.log(message, ...rest);
    }
  }

  protected override printAsJson(
    message: unknown,
    options: {
      context: string;
      logLevel: LogLevel;
      writeStreamType?: 'stdout' | 'stderr';
      errorStack?: unknown;
    },
  ): void {
    const line: Record<string, unknown> = {
      time: new Date().toISOString(),
      level: options.logLevel,
      role: this.identity.role,
    };
    if (this.identity.workerId !== undefined) {
      line.workerId = this.identity.workerId;
    }
    line.pid = process.pid;
    if (options.context) {
      line.context = options.context;
    }
    if (isLogEvent(message)) {
      for (const [key, value] of Object.entries(message)) {
        if (!RESERVED.has(key)) {
          line[key] = value;
        }
      }
    } else {
      line.message = message;
    }
    if (options.errorStack) {
      line.stack = options.errorStack;
    }
    process[options.writeStreamType ?? 'stdout'].write(`${this.stringifyJsonLogObject(line)}\n`);
  }

  protected override stringifyMessage(message: unknown, logLevel: LogLevel): string {
    if (isLogEvent(message)) {
      const text = message.requestId
        ? `${message.message} (request ${message.requestId})`
        : message.message;
      return super.stringifyMessage(text, logLevel) as string;
    }
    return super.stringifyMessage(message, logLevel) as string;
  }
}

/** The logger of one process: `server`, `primary` or `worker` with its id. */
export function createLogger(config: AppConfig, identity: ProcessIdentity): AppLogger {
  return new AppLogger(identity, config);
}
