import express from 'express';
import helmet, { type HelmetOptions } from 'helmet';
import { request as httpRequest, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { PLAIN_HTTP_HELMET } from '../../app.setup';
import { helmetHeaders } from './helmet-headers';

const NODE_HEADERS = new Set(['date', 'connection', 'keep-alive', 'content-length']);

/** The raw headers of an answer, in order, without the ones Node adds. */
function headersFrom(port: number, path: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ port, host: '127.0.0.1', path }, (res) => {
      res.resume();
      res.on('end', () => {
        const own: string[] = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) {
          const name = res.rawHeaders[i];
          if (!NODE_HEADERS.has(name.toLowerCase())) {
            own.push(`${name}: ${res.rawHeaders[i + 1]}`);
          }
        }
        resolve(own);
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** The server's two option sets (plain HTTP, and helmet's defaults over HTTPS), and others. */
const OPTIONS: [string, Readonly<HelmetOptions> | undefined][] = [
  ['the plain-HTTP options (app.setup.ts)', PLAIN_HTTP_HELMET],
  ["helmet's defaults", undefined],
  ['a custom policy', { contentSecurityPolicy: { directives: { imgSrc: ["'self'", 'data:'] } } }],
  ['headers turned off', { xFrameOptions: false, referrerPolicy: { policy: 'same-origin' } }],
];

describe("helmetHeaders, against helmet's middleware", () => {
  let server: Server;
  let port: number;

  beforeAll(async () => {
    const app = express();
    app.disable('x-powered-by');
    OPTIONS.forEach(([, options], i) => {
      app.get(`/helmet/${i}`, helmet(options), (_req, res) => {
        res.end();
      });
      const headers = helmetHeaders(options);
      app.get(`/list/${i}`, (_req, res) => {
        for (const [name, value] of headers) {
          res.setHeader(name, value);
        }
        res.end();
      });
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it.each(OPTIONS.map(([name], i) => [name, i]))(
    'sets the headers helmet sets, in its order, for %s',
    async (_name, i) => {
      const expected = await headersFrom(port, `/helmet/${i}`);
      expect(expected.some((header) => header.startsWith('Content-Security-Policy: '))).toBe(true);

      expect(await headersFrom(port, `/list/${i}`)).toEqual(expected);
    },
  );

  it('leaves HSTS and upgrade-insecure-requests out over plain HTTP only', () => {
    const plain = new Map(helmetHeaders(PLAIN_HTTP_HELMET));
    const secure = new Map(helmetHeaders());

    expect(plain.has('Strict-Transport-Security')).toBe(false);
    expect(plain.get('Content-Security-Policy')).not.toContain('upgrade-insecure-requests');
    expect(secure.get('Strict-Transport-Security')).toBe('max-age=31536000; includeSubDomains');
    expect(secure.get('Content-Security-Policy')).toContain('upgrade-insecure-requests');
  });
});
