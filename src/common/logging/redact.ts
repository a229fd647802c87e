import { unescape } from 'node:querystring';

/** Query parameters that carry a credential (RFC 6750's `access_token`), by decoded name. */
const CREDENTIAL_PARAMETERS = new Set(['access_token']);

const REDACTED = '[redacted]';

/**
 * A request URL fit for a log line: the value of every credential query parameter replaced.
 * Names are decoded as Express decodes them (node:querystring), so `access%5Ftoken=` is
 * caught too.
 */
export function redactUrl(url: string): string {
  const start = url.indexOf('?');
  if (start === -1) {
    return url;
  }
  const pairs = url
    .slice(start + 1)
    .split('&')
    .map((pair) => {
      const equals = pair.indexOf('=');
      const name = equals === -1 ? pair : pair.slice(0, equals);
      const decoded = unescape(name.replace(/\+/g, ' ')).trim().toLowerCase();
      return CREDENTIAL_PARAMETERS.has(decoded) ? `${name}=${REDACTED}` : pair;
    });
  return `${url.slice(0, start + 1)}${pairs.join('&')}`;
}
