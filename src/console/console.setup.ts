import { NestExpressApplication } from '@nestjs/platform-express';
import type { Application, Request, Response } from 'express';
import { join } from 'node:path';

/** The console's files: copied next to the compiled code by the Nest CLI (nest-cli.json assets). */
const STATIC_DIR = join(__dirname, 'static');

/**
 * Serves the live console: the page at `/`, its script and style under `/console/`. Plain
 * files on the Express instance, outside Nest's routes: no API rule applies to them, and an
 * API request never touches the file system on their account.
 */
export function serveConsole(app: NestExpressApplication): void {
  app.useStaticAssets(STATIC_DIR, { prefix: '/console/', index: false });
  const express = app.getHttpAdapter().getInstance() as Application;
  express.get('/', (_req: Request, res: Response) => res.sendFile(join(STATIC_DIR, 'index.html')));
}
