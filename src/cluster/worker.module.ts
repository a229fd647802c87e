import { Module } from '@nestjs/common';
import { HTTP_API_IMPORTS, HTTP_API_PROVIDERS } from '../app.module';
import { ProcessRoleModule } from './process-role';

/**
 * The root of a cluster worker: the HTTP API, its store reached over IPC (or Redis). No
 * eviction or snapshot: those run once, in the primary.
 */
@Module({
  imports: [ProcessRoleModule.forRole('worker'), ...HTTP_API_IMPORTS],
  providers: HTTP_API_PROVIDERS,
})
export class WorkerModule {}
