import { isIP } from 'node:net';
import { addressRefusal } from './address-policy';
import { WEBHOOK_URL_MAX } from './dto/webhook.dto';

/**
 * Why an endpoint URL is refused, or null: http or https, absolute, no credentials, at most
 * WEBHOOK_URL_MAX characters, and not a literal address (or `localhost`) that deliveries may
 * not reach. A hostname is checked again at every connection, on every address it resolves to
 * (http-webhook-sender.ts): this only refuses early what can never be delivered to.
 */
export function urlRefusal(url: string, allowPrivateNetworks: boolean): string | null {
  if (url.length > WEBHOOK_URL_MAX) {
    return `url must be at most ${WEBHOOK_URL_MAX} characters`;
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'url must be an absolute http or https URL';
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    return 'url must be an http or https URL';
  }
  if (parsed.username || parsed.password) {
    return 'url must not hold credentials (user:password@)';
  }
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  if (!host) {
    return 'url must name a host';
  }
  if (isIP(host)) {
    const refusal = addressRefusal(host, allowPrivateNetworks);
    if (refusal) {
      return `url must not point at ${refusal}`;
    }
  } else if (!allowPrivateNetworks && (host === 'localhost' || host.endsWith('.localhost'))) {
    return 'url must not point at a loopback address';
  }
  return null;
}
