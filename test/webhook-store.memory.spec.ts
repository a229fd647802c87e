import { StoreHub } from '../src/cluster/store-hub';
import { InMemoryConversationRepository } from '../src/conversations/repositories/memory/in-memory-conversation.repository';
import { IpcConversationRepository } from '../src/conversations/repositories/ipc/ipc-conversation.repository';
import { HttpWebhookSender } from '../src/webhooks/http-webhook-sender';
import { IpcWebhookStore } from '../src/webhooks/ipc/ipc-webhook.store';
import { InMemoryWebhookStore } from '../src/webhooks/memory/in-memory-webhook.store';
import { loopback } from './utils/loopback';
import { webhookStoreContract } from './contracts/webhook-store.contract';

webhookStoreContract('in memory', async (settings, clock) => {
  const sender = new HttpWebhookSender({
    timeoutMs: settings.timeoutMs,
    allowPrivateNetworks: true,
  });
  const store = new InMemoryWebhookStore(settings, sender, undefined, clock);
  store.start();
  return {
    store,
    sink: store,
    teardown: async () => {
      await store.stop();
      sender.close();
    },
  };
});

webhookStoreContract('IPC to the primary', async (settings, clock) => {
  const sender = new HttpWebhookSender({
    timeoutMs: settings.timeoutMs,
    allowPrivateNetworks: true,
  });
  const primary = new InMemoryWebhookStore(settings, sender, undefined, clock);
  primary.start();
  // As in a worker: the webhook store shares the conversation store's channel.
  const worker = new IpcConversationRepository(
    loopback(new StoreHub(new InMemoryConversationRepository(), undefined, primary)),
    2_000,
  );
  return {
    store: new IpcWebhookStore(worker.channel),
    sink: primary,
    teardown: async () => {
      worker.close();
      await primary.stop();
      sender.close();
    },
  };
});
