import { redactUrl } from './redact';

describe('redactUrl', () => {
  it.each([
    ['/api/x/events', '/api/x/events'],
    ['/api/x/events?lastEventId=3', '/api/x/events?lastEventId=3'],
    ['/api/x/events?access_token=secret', '/api/x/events?access_token=[redacted]'],
    [
      '/api/x/events?lastEventId=1&access_token=secret&access_token=other',
      '/api/x/events?lastEventId=1&access_token=[redacted]&access_token=[redacted]',
    ],
    ['/e?access%5Ftoken=secret', '/e?access%5Ftoken=[redacted]'],
    ['/e?ACCESS_TOKEN=secret&a=1', '/e?ACCESS_TOKEN=[redacted]&a=1'],
    ['/e?access_token', '/e?access_token=[redacted]'],
    ['/e?access_token=a=b&x=%ZZ', '/e?access_token=[redacted]&x=%ZZ'],
    ['/e?my_access_token=kept', '/e?my_access_token=kept'],
  ])('%s -> %s', (url, logged) => {
    expect(redactUrl(url)).toBe(logged);
  });
});
