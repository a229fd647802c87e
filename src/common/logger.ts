import { ConsoleLogger, LogLevel } from '@nestjs/common';
import { AppConfig } from '../config/app.config';

const LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

export function logLevels(level: AppConfig['LOG_LEVEL']): LogLevel[] {
  return level === 'silent' ? [] : LEVELS.slice(0, LEVELS.indexOf(level) + 1);
}

/** A logger whose every line names the process that wrote it: `primary`, `worker 3`, `server`. */
export function createLogger(config: AppConfig, processName: string): ConsoleLogger {
  return new ConsoleLogger({
    prefix: processName,
    logLevels: logLevels(config.LOG_LEVEL),
    colors: Boolean(process.stdout.isTTY),
  });
}
