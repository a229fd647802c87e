import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { AppModule } from '../app.module';
import { APP_OPTIONS, configureApp } from '../app.setup';

/** Objects with their keys sorted, at every depth (arrays keep their order), for a stable diff. */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(sortKeys);
  }
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((key) => [key, sortKeys((value as Record<string, unknown>)[key])]),
    );
  }
  return value;
}

/**
 * The OpenAPI document the server serves at /docs-json, as committed in docs/openapi.json:
 * keys sorted, two-space indent, a final newline. The app is created as the server creates
 * it (AppModule, configureApp) but never listens, on the default configuration: every
 * variable in `configNames` is removed from the environment first, so the in-memory store
 * is used and nothing local leaks into the file. configureApp builds the document and hands
 * it to SwaggerModule.setup; it is taken there, so the file is exactly what /docs-json
 * serves, with no change to the server for it.
 */
export async function openApiJson(configNames: readonly string[]): Promise<string> {
  for (const name of configNames) {
    delete process.env[name];
  }
  const setup = SwaggerModule.setup.bind(SwaggerModule);
  let document: OpenAPIObject | undefined;
  SwaggerModule.setup = (path, app, served, options) => {
    document = typeof served === 'function' ? served() : served;
    setup(path, app, document, options);
  };
  const app = await NestFactory.create<NestExpressApplication>(AppModule, {
    ...APP_OPTIONS,
    logger: false,
  });
  try {
    configureApp(app);
  } finally {
    SwaggerModule.setup = setup;
    await app.close();
  }
  if (!document) {
    throw new Error('configureApp did not set up Swagger: no OpenAPI document to write');
  }
  return JSON.stringify(sortKeys(document), null, 2) + '\n';
}
