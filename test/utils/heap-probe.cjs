// Test only: loaded into a spawned server with NODE_OPTIONS="--expose-gc --require <this file>"
// (see heapAfterGc in spawn-server.ts). On SIGUSR2 the cluster's primary (or a WORKERS=0
// process) collects garbage fully and prints the heap it still uses, so a test can weigh what
// the store holds with nothing added to the server.
'use strict';
const cluster = require('node:cluster');

if (cluster.isPrimary && typeof globalThis.gc === 'function') {
  process.on('SIGUSR2', () => {
    globalThis.gc();
    globalThis.gc();
    process.stderr.write(`heap-probe ${process.memoryUsage().heapUsed}\n`);
  });
}
