import { RATE_LIMIT_SCRIPTS_DIR } from '../../../access/rate-limits/redis/redis-rate-limit.store';
import { loadRedisScripts } from './redis-scripts';
import { ScriptCode } from './script-codes';

describe('the Redis scripts as loaded', () => {
  // The store's own, and those of the rate-limit counters on its connection.
  const scripts = [...loadRedisScripts(), ...loadRedisScripts(RATE_LIMIT_SCRIPTS_DIR)];
  const byName = new Map(scripts.map((script) => [script.name, script]));

  it('has one command per file, with the key count its name gives', () => {
    expect(Object.fromEntries(scripts.map((s) => [s.name, s.numberOfKeys]))).toEqual({
      chatAppend: 7,
      chatChangesAfter: 5,
      chatCountInbox: 1,
      chatCreate: 5,
      chatDelete: 5,
      chatDeleteIf: 1,
      chatEvict: 7,
      chatGet: 5,
      chatHit: 2,
      chatInboxScan: 1,
      chatMarkCounted: 1,
      chatPage: 5,
      chatQueued: 1,
      chatRead: 5,
      chatRecount: 5,
      chatReserve: 1,
      chatSetInboxCounts: 1,
      chatTyping: 1,
      chatUpdate: 5,
    });
  });

  it('has its includes put in, and defines every code it names', () => {
    for (const { name, lua } of scripts) {
      expect(`${name}: ${lua}`).not.toContain('--@');
      const code = lua
        .replace(/--\[\[[\s\S]*?\]\]/g, '')
        .replace(/--.*$/gm, '')
        .replace(/'[^']*'/g, "''");
      const named = new Set(code.match(/\b[A-Z][A-Z_]+\b/g) ?? []);
      for (const word of named) {
        if (word !== 'KEYS' && word !== 'ARGV') {
          expect(`${name}: ${code}`).toMatch(new RegExp(`^local ${word} = -?\\d+$`, 'm'));
        }
      }
    }
    expect(byName.get('chatAppend')?.lua).toContain(
      `local CONVERSATION_NOT_FOUND = ${ScriptCode.ConversationNotFound}`,
    );
    expect(byName.get('chatRead')?.lua).toContain('local function tellChange(');
  });
});
