import { createSocket, type Socket } from 'node:dgram';
import { createServer } from 'node:net';

/** Free loopback ports for tests that start real listeners (no other imports: CLI tests use it too). */
export async function freeUdpPort(): Promise<number> {
  for (;;) {
    const s = createSocket('udp4');
    const port = await new Promise<number>((res) => s.bind(0, '127.0.0.1', () => res(s.address().port)));
    s.close();
    // sipp also binds port+1/+2 for media by default; stay clear of the ephemeral top end.
    if (port < 60000) return port;
  }
}

/**
 * The first of `count` consecutive UDP ports that could all be bound on 127.0.0.1 a moment ago
 * (sipp's -mp binds its media base port and the next ports), clear of the ports in `avoid`.
 */
export async function freeUdpBlock(count: number, avoid: number[] = []): Promise<number> {
  for (;;) {
    const first = await freeUdpPort();
    if (first + count > 60000 || avoid.some((a) => a >= first && a < first + count)) continue;
    const sockets: Socket[] = [];
    let free = true;
    for (let i = 0; i < count && free; i++) {
      const s = createSocket('udp4');
      free = await new Promise<boolean>((res) => {
        s.once('error', () => res(false));
        s.bind(first + i, '127.0.0.1', () => res(true));
      });
      sockets.push(s); // closed below, bound or not
    }
    await Promise.all(sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
    if (free) return first;
  }
}

/** A TCP port the kernel just gave out free on 127.0.0.1. */
export async function freeTcpPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * A port free on both UDP and TCP (the gateway's SIP port listens on both): freeUdpPort's pick,
 * kept only when a TCP listener can have it too.
 */
export async function freeSipPort(): Promise<number> {
  for (;;) {
    const port = await freeUdpPort();
    const srv = createServer();
    const free = await new Promise<boolean>((res) => {
      srv.once('error', () => res(false));
      srv.listen(port, '127.0.0.1', () => res(true));
    });
    if (free) {
      await new Promise((r) => srv.close(r));
      return port;
    }
  }
}

/**
 * Ports are picked free, but a parallel test can take one before the program under test binds it;
 * voiceguard then stops with one line naming the port and EADDRINUSE. `start` runs up to `tries`
 * times while it fails that way (it picks its ports again each time); any other error fails at once.
 */
export async function retryTakenPort<T>(start: () => Promise<T>, tries = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (attempt >= tries || !/EADDRINUSE/.test((err as Error).message)) throw err;
    }
  }
}
