import { Logger, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule } from './app.module';
import { APP_OPTIONS, configureApp } from './app.setup';
import { AppConfig, ConfigValidationError, validateConfig } from './config/app.config';

const LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

function logLevels(config: AppConfig): LogLevel[] {
  if (config.LOG_LEVEL === 'silent') {
    return [];
  }
  return LEVELS.slice(0, LEVELS.indexOf(config.LOG_LEVEL) + 1);
}

async function bootstrap(): Promise<void> {
  let config: AppConfig;
  try {
    config = validateConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigValidationError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
  const app = await NestFactory.create<NestExpressApplication>(AppModule, {
    ...APP_OPTIONS,
    logger: logLevels(config),
  });
  configureApp(app);
  await app.listen(config.PORT, config.HOST);
  new Logger('Bootstrap').log(
    `Listening on http://${config.HOST}:${config.PORT} (API under /api, Swagger UI at /docs)`,
  );
}

void bootstrap();
