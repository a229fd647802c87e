import { Test, TestingModuleBuilder } from '@nestjs/testing';
import request from 'supertest';
import { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule } from '../../src/app.module';
import { APP_OPTIONS, configureApp } from '../../src/app.setup';
import { TimedExpressAdapter } from '../../src/cluster/http-server';
import { AppConfig, appConfig, validateConfig } from '../../src/config/app.config';

export interface TestAppOptions {
  /** Environment-style overrides, validated exactly as the server validates its environment. */
  env?: Record<string, string>;
  /** Further provider overrides (a fake clock, a failing repository, ...). */
  override?: (builder: TestingModuleBuilder) => TestingModuleBuilder;
}

/** The real AppModule, configured as main.ts configures it, with quiet logs unless asked. */
export async function createTestApp(options: TestAppOptions = {}): Promise<NestExpressApplication> {
  // No rate limit unless a test asks for one: suites send thousands of requests from one
  // address. Explicit, so it holds with API_KEYS set too (where the default is 600).
  const config: AppConfig = validateConfig({
    LOG_LEVEL: 'silent',
    RATE_LIMIT_MAX: '0',
    ...options.env,
  });
  let builder = Test.createTestingModule({ imports: [AppModule] })
    .overrideProvider(appConfig.KEY)
    .useValue(config);
  if (options.override) {
    builder = options.override(builder);
  }
  const moduleRef = await builder.compile();
  // The server's own adapter: requests and responses made as in production (see http-server.ts).
  const app = moduleRef.createNestApplication<NestExpressApplication>(
    new TimedExpressAdapter({}),
    APP_OPTIONS,
  );
  app.useLogger(config.LOG_LEVEL === 'silent' ? false : ['error', 'warn']);
  configureApp(app);
  await app.init();
  return app;
}

/** Creates the app before the enclosing describe's tests and closes it after; returns a getter. */
export function useTestApp(options: TestAppOptions = {}): () => NestExpressApplication {
  let app: NestExpressApplication;
  beforeAll(async () => {
    app = await createTestApp(options);
  });
  afterAll(async () => {
    await app.close();
  });
  return () => app;
}

/**
 * The app as useTestApp makes it, and a conversation opened in it before the enclosing
 * describe's tests with `messages` agent messages (m0, m1, ...); `opened` is given its id.
 */
export function useTestAppWithConversation(messages: number, opened: (id: string) => void) {
  const app = useTestApp();
  const http = () => request(app().getHttpServer());
  beforeAll(async () => {
    const id = ((await http().post('/api/conversations')).body as { id: string }).id;
    opened(id);
    for (let i = 0; i < messages; i++) {
      await http()
        .post(`/api/conversations/${id}/messages`)
        .send({ sender: 'agent', content: `m${i}` });
    }
  });
  return { app, http };
}
