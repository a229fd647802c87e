import { Redis } from 'ioredis';
import { AddressInfo, createServer, Server, Socket } from 'node:net';
import { unsolicitedUnsubscribe } from './redis-subscribers';

/**
 * A node on loopback that confirms SSUBSCRIBE as Redis 7 does and then, as a node whose slot
 * was taken away does, pushes a `sunsubscribe` for the channel that nobody asked for. Every
 * other command is answered +OK.
 */
function nodeThatDropsTheSlot(): Promise<Server> {
  const server = createServer((socket: Socket) => {
    socket.on('data', (data: Buffer) => {
      const words = data.toString().split('\r\n');
      const at = words.findIndex((word) => word.toLowerCase() === 'ssubscribe');
      if (at < 0) {
        socket.write('+OK\r\n');
        return;
      }
      const channel = words[at + 2];
      const bulk = (text: string) => `$${Buffer.byteLength(text)}\r\n${text}\r\n`;
      socket.write(`*3\r\n${bulk('ssubscribe')}${bulk(channel)}:1\r\n`);
      setTimeout(() => socket.write(`*3\r\n${bulk('sunsubscribe')}${bulk(channel)}:0\r\n`), 10);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('unsolicitedUnsubscribe (ioredis as installed)', () => {
  it('names the channel of a sunsubscribe a node pushed unasked, from the error ioredis emits for it', async () => {
    const server = await nodeThatDropsTheSlot();
    const connection = new Redis({
      host: '127.0.0.1',
      port: (server.address() as AddressInfo).port,
      lazyConnect: true,
      enableReadyCheck: false,
      retryStrategy: () => null,
    });
    try {
      const dropped = new Promise<string | null>((resolve) =>
        connection.on('error', (error: Error) => resolve(unsolicitedUnsubscribe(error))),
      );
      await connection.connect();
      await connection.ssubscribe('chat:events:{a,b}');
      expect(await dropped).toBe('chat:events:{a,b}');
    } finally {
      connection.disconnect();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('names nothing for any other error', () => {
    expect(unsolicitedUnsubscribe(new Error('connect ECONNREFUSED 127.0.0.1:1'))).toBeNull();
    expect(
      unsolicitedUnsubscribe(
        new Error(
          'Command queue state error. If you can reproduce this, please report it. Last reply: ssubscribe,c,1',
        ),
      ),
    ).toBeNull();
  });
});
