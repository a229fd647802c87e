import { Redis } from 'ioredis';
import { AddressInfo, createServer, Server, Socket } from 'node:net';

/** The commands in what a client sent: each RESP array as its words. */
function commandsIn(text: string): string[][] {
  const words = text.split('\r\n');
  const commands: string[][] = [];
  for (let i = 0; i < words.length;) {
    const count = /^\*(\d+)$/.exec(words[i++])?.[1];
    if (count === undefined) {
      continue;
    }
    const command: string[] = [];
    for (; command.length < Number(count) && i < words.length; i++) {
      if (!words[i].startsWith('$')) {
        command.push(words[i]);
      }
    }
    commands.push(command);
  }
  return commands;
}

/**
 * A node on loopback that speaks RESP3 as Redis 7 does to ioredis 6 (HELLO 3), confirms
 * SSUBSCRIBE with a push and then, as a node whose slot was taken away does, pushes a
 * `sunsubscribe` for the channel that nobody asked for. Every other command is answered +OK.
 */
function nodeThatDropsTheSlot(): Promise<Server> {
  const bulk = (text: string) => `$${Buffer.byteLength(text)}\r\n${text}\r\n`;
  const server = createServer((socket: Socket) => {
    socket.on('data', (data: Buffer) => {
      for (const [name, channel] of commandsIn(data.toString())) {
        if (name.toLowerCase() === 'hello') {
          socket.write(`%2\r\n${bulk('server')}${bulk('redis')}${bulk('proto')}:3\r\n`);
        } else if (name.toLowerCase() === 'ssubscribe') {
          socket.write(`>3\r\n${bulk('ssubscribe')}${bulk(channel)}:1\r\n`);
          setTimeout(() => socket.write(`>3\r\n${bulk('sunsubscribe')}${bulk(channel)}:0\r\n`), 10);
        } else {
          socket.write('+OK\r\n');
        }
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('an unasked sunsubscribe (ioredis as installed)', () => {
  it('makes the connection emit moved (ShardSubscribers then moves its channels), with no error', async () => {
    const server = await nodeThatDropsTheSlot();
    const connection = new Redis({
      host: '127.0.0.1',
      port: (server.address() as AddressInfo).port,
      lazyConnect: true,
      enableReadyCheck: false,
      retryStrategy: () => null,
    });
    const errors: Error[] = [];
    connection.on('error', (error: Error) => errors.push(error));
    try {
      const moved = new Promise<void>((resolve) => connection.once('moved', () => resolve()));
      await connection.connect();
      await connection.ssubscribe('chat:events:{a,b}');
      await moved;
      // Taken for no command's answer: the next command on the connection gets its own.
      await expect(connection.ssubscribe('chat:events:{c,d}')).resolves.toBe(1);
      await expect(connection.ping()).resolves.toBe('OK');
      expect(errors).toEqual([]);
    } finally {
      connection.disconnect();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
