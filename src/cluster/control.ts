/** Primary → worker control messages, on their own channel beside the store protocol. */
export const CONTROL_CHANNEL = 'chat:control';

export interface ShutdownMessage {
  ch: typeof CONTROL_CHANNEL;
  cmd: 'shutdown';
}

export function isShutdownMessage(message: unknown): message is ShutdownMessage {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as ShutdownMessage).ch === CONTROL_CHANNEL &&
    (message as ShutdownMessage).cmd === 'shutdown'
  );
}

/** Worker → primary: this worker serves HTTP now (sent once, after its listening line). */
export interface ReadyMessage {
  ch: typeof CONTROL_CHANNEL;
  cmd: 'ready';
  port: number;
}

export function isReadyMessage(message: unknown): message is ReadyMessage {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as ReadyMessage).ch === CONTROL_CHANNEL &&
    (message as ReadyMessage).cmd === 'ready'
  );
}
