import { addressRefusal, embeddedIpv4 } from './address-policy';

describe('webhook address policy', () => {
  it.each([
    '127.0.0.1',
    '127.255.255.254',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '100.64.0.1',
    '169.254.1.1',
    '::1',
    'fe80::1',
    'fc00::1',
    'fd12:3456::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:10.0.0.1',
    '::127.0.0.1',
    '64:ff9b::10.0.0.1',
    '64:ff9b::a00:1',
    '2002:c0a8:101::1',
  ])('refuses %s unless private networks are allowed', (address) => {
    expect(addressRefusal(address, false)).toMatch(/private|loopback|link-local/);
    expect(addressRefusal(address, true)).toBeNull();
  });

  it.each([
    '169.254.169.254',
    '169.254.170.2',
    '100.100.100.200',
    '168.63.129.16',
    'fd00:ec2::254',
    '::ffff:169.254.169.254',
    '::ffff:a9fe:a9fe',
    '64:ff9b::169.254.169.254',
  ])('refuses the metadata address %s even with private networks allowed', (address) => {
    expect(addressRefusal(address, true)).toBe('a cloud metadata address');
    expect(addressRefusal(address, false)).toBe('a cloud metadata address');
  });

  it.each([
    '0.0.0.0',
    '0.1.2.3',
    '224.0.0.1',
    '239.255.255.250',
    '255.255.255.255',
    '240.0.0.1',
    '192.0.2.10',
    '198.51.100.7',
    '203.0.113.9',
    '198.18.0.1',
    '::',
    'ff02::1',
    '2001:db8::1',
    '::ffff:0.0.0.0',
    '::ffff:224.0.0.1',
  ])('refuses the unroutable address %s always', (address) => {
    expect(addressRefusal(address, true)).toMatch(/unroutable/);
  });

  it.each([
    '93.184.215.14',
    '1.1.1.1',
    '8.8.8.8',
    '2606:4700:4700::1111',
    '2a00:1450:4001:80e::200e',
    '::ffff:8.8.8.8',
    '64:ff9b::8.8.8.8',
  ])('lets the public address %s through', (address) => {
    expect(addressRefusal(address, false)).toBeNull();
  });

  it('refuses what is not an IP address, and reads the IPv4 inside IPv6 forms', () => {
    expect(addressRefusal('example.com', true)).toBe('not an IP address');
    expect(addressRefusal('127.1', false)).toBe('not an IP address');
    expect(embeddedIpv4('::ffff:7f00:1')).toBe('127.0.0.1');
    expect(embeddedIpv4('::FFFF:192.168.0.1')).toBe('192.168.0.1');
    expect(embeddedIpv4('2002:0808:0808::')).toBe('8.8.8.8');
    expect(embeddedIpv4('2606:4700::1111')).toBeNull();
    expect(embeddedIpv4('::1')).toBeNull();
  });
});
