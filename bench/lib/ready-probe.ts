/**
 * Preloaded into every benchmarked server (`node --require`, inherited by cluster workers
 * through NODE_OPTIONS) so that readiness can be seen with LOG_LEVEL=silent: each process
 * prints one line to stderr when a server of its starts listening. Nothing else changes.
 */
import net from 'node:net';
import { READY_MARK } from './ready-mark';

const listen = net.Server.prototype.listen as (this: net.Server, ...args: unknown[]) => net.Server;

net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]): net.Server {
  this.once('listening', () => process.stderr.write(`${READY_MARK} ${process.pid}\n`));
  return listen.apply(this, args);
} as typeof net.Server.prototype.listen;
