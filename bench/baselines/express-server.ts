import { ChatCore } from './chat-core';
import { chatApp, serve } from './express-chat';

/**
 * Configuration E: the API as a user would write it on bare Express 5 with hand-written
 * validation. ETag and X-Powered-By are off, as in the real server, so responses match.
 */
serve(chatApp(new ChatCore()));
