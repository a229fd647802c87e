import { TypingGate } from './typing-gate';

describe('TypingGate', () => {
  it('lets one signal a second through per key, and absorbs the renewals in between', () => {
    const gate = new TypingGate();
    expect(gate.admit('c agent', 10_000)).toBe(true);
    expect(gate.admit('c agent', 10_400)).toBe(false);
    expect(gate.admit('c customer', 10_400)).toBe(true);
    expect(gate.admit('d agent', 10_400)).toBe(true);
    expect(gate.admit('c agent', 10_999)).toBe(false);
    expect(gate.admit('c agent', 11_000)).toBe(true);
    expect(gate.admit('c agent', 11_500)).toBe(false);
    expect(gate.admit('c agent', 12_100)).toBe(true);
  });

  it('lets the next one through at once after forget', () => {
    const gate = new TypingGate();
    expect(gate.admit('c agent', 10_000)).toBe(true);
    gate.forget('c agent');
    expect(gate.admit('c agent', 10_100)).toBe(true);
    expect(gate.admit('c agent', 10_200)).toBe(false);
  });

  it('keeps no more than the last two seconds of keys', () => {
    const gate = new TypingGate();
    for (let i = 0; i < 100; i++) {
      gate.admit(`k${i}`, 10_000);
    }
    gate.admit('x', 11_000);
    gate.admit('y', 12_000);
    const held = gate as unknown as { current: Map<string, number>; previous: Map<string, number> };
    expect(held.current.size + held.previous.size).toBe(2);
  });
});
