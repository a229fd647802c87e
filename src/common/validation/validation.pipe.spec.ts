import { AppValidationPipe } from './validation.pipe';

describe('AppValidationPipe', () => {
  const fast = new AppValidationPipe();
  const reference = new AppValidationPipe(false);

  it('hands parameters and custom decorators back as ValidationPipe does', async () => {
    expect(fast.transform('abc', { type: 'param', metatype: String, data: 'id' })).toBe('abc');
    const request = {};
    expect(fast.transform(request, { type: 'custom', metatype: Object })).toBe(request);
    expect(await reference.transform('abc', { type: 'param', metatype: String, data: 'id' })).toBe(
      'abc',
    );
  });
});
