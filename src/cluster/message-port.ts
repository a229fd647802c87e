/** One end of a message channel: a worker's `process`, or a test's in-process loopback. */
export interface MessagePort {
  send(message: unknown): void;
  onMessage(listener: (message: unknown) => void): () => void;
  /** Called when the other end goes away for good. */
  onClose(listener: () => void): () => void;
}

/** The worker's end of the cluster IPC channel to the primary. */
export function processPort(): MessagePort {
  return {
    send(message) {
      if (!process.send || !process.connected) {
        throw new Error('IPC channel closed');
      }
      // An error here means the channel closed meanwhile; 'disconnect' fails what is pending.
      process.send(message, undefined, undefined, () => undefined);
    },
    onMessage(listener) {
      process.on('message', listener);
      return () => process.off('message', listener);
    },
    onClose(listener) {
      process.on('disconnect', listener);
      return () => process.off('disconnect', listener);
    },
  };
}
