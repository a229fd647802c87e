import { createHash } from 'node:crypto';
import { conversationIdFor } from './idempotency';

const reference = (text: string) => createHash('sha256').update(text).digest();

describe('keyed creates', () => {
  it('derive the conversation id as they always have: derived ids stay valid', () => {
    // A keyed create's conversation id, as earlier versions derived it (snapshots, Redis keys).
    const bytes = reference('conversation anonymous k');
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = bytes.subarray(0, 16).toString('hex');
    expect(conversationIdFor('anonymous k')).toBe(
      `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
    );
  });
});
