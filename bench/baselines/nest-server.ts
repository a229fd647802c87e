import { ChatCore } from './chat-core';
import { startNestChat } from './nest-chat';

/** Configuration N: the leanest NestJS 12 app doing E's work (nest-chat.ts). */
startNestChat(new ChatCore()).catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
