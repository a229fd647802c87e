import { ChatCore } from './chat-core';
import { startNestChat } from './nest-chat';

/**
 * Configuration NP: N on a server that makes requests and responses with Express's
 * prototypes, as the real server does (nest-chat.ts, PrototypedExpressAdapter): N with the
 * server's largest single cut, so that what the rest of the server costs stays in view.
 */
startNestChat(new ChatCore(), undefined, true).catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
