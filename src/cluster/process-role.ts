import { DynamicModule, Module } from '@nestjs/common';

/**
 * Which process this is: `server` (WORKERS=0: HTTP and the store in one process), `primary`
 * (cluster mode: owns the store, serves no HTTP) or `worker` (cluster mode: serves HTTP,
 * reaches the primary's store). Decided once by the bootstrap (cluster/cluster.bootstrap.ts),
 * which starts the root module of that role; everything else injects it.
 */
export type ProcessRole = 'server' | 'primary' | 'worker';

/** Injection token of the ProcessRole: `@Inject(PROCESS_ROLE) role: ProcessRole`. */
export const PROCESS_ROLE = 'PROCESS_ROLE';

/** Provides PROCESS_ROLE everywhere; each root module imports it with its own role. */
@Module({})
export class ProcessRoleModule {
  static forRole(role: ProcessRole): DynamicModule {
    return {
      module: ProcessRoleModule,
      global: true,
      providers: [{ provide: PROCESS_ROLE, useValue: role }],
      exports: [PROCESS_ROLE],
    };
  }
}
