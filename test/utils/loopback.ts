import { StoreHub } from '../../src/cluster/store-hub';
import { MessagePort } from '../../src/cluster/message-port';

type Listener = (message: unknown) => void;

/**
 * A worker-side port wired to a StoreHub in this process. Messages are JSON round-tripped and
 * delivered on a later tick, as node:cluster's IPC channel does.
 */
export function loopback(hub: StoreHub | null): MessagePort & { disconnect(): void } {
  const listeners = new Set<Listener>();
  const closeListeners = new Set<() => void>();
  return {
    send(message) {
      const wire = JSON.parse(JSON.stringify(message)) as unknown;
      setImmediate(() =>
        hub?.handle(wire, (reply) => {
          const back = JSON.parse(JSON.stringify(reply)) as unknown;
          setImmediate(() => listeners.forEach((listener) => listener(back)));
        }),
      );
    },
    onMessage(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    onClose(listener) {
      closeListeners.add(listener);
      return () => closeListeners.delete(listener);
    },
    disconnect() {
      closeListeners.forEach((listener) => listener());
    },
  };
}
