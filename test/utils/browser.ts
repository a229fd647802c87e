import { existsSync } from 'node:fs';
import { Browser, chromium } from 'playwright-core';

/** Debian's chromium package; never a downloaded browser. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * `describe` for browser tests: skipped with a loud notice when Chromium is missing, except
 * under CI=true, where they run (and fail without it).
 */
export function describeWithBrowser(name: string, body: () => void): void {
  if (!existsSync(CHROMIUM) && process.env.CI !== 'true') {
    process.stderr.write(
      `\n*** SKIPPED: "${name}" needs Chromium at ${CHROMIUM} (Debian: apt-get install chromium). ***\n\n`,
    );
    describe.skip(name, body);
    return;
  }
  describe(name, body);
}

/**
 * Headless Chromium, started as this machine allows (no sandbox as root, no network chatter),
 * with any further command-line switches (`--host-resolver-rules=...`).
 */
export function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...extraArgs,
    ],
  });
}
