/**
 * The sandbox's Teams chat page, walked by a person in a real browser
 * (Debian's Chromium driven by playwright-core): Alex asks for a file and
 * writes why, Adele approves it in the approvers channel with a comment, and
 * Alex gets a link that downloads the file recovered from a real backup. Megan,
 * a requester of the customer, is never offered the approvers channel.
 *
 * Screenshots of each step go to test/.cache/screenshots/, to look at when the
 * page changes. `sh scripts/setup.sh test` installs Chromium; no browser is
 * ever downloaded.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_APPROVERS_CONVERSATION, startApp, type RunningApp } from '../cli/app.ts';
import { loadConfig } from '../core/config.ts';
import type { SandboxUser } from '../sandbox/index.ts';
import { createServerDatabase, tempDir } from './support/database.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SCREENSHOTS = path.resolve('test/.cache/screenshots');

let app: RunningApp;
let browser: BrowserContext;
let page: Page;
let dataDir: string;
let profileDir: string;
let dropDatabase: (() => Promise<void>) | undefined;

const user = (name: string): SandboxUser => {
  const found = app.sandbox!.seed.users.find((u) => u.displayName === name);
  if (!found) throw new Error(`no seeded user ${name}`);
  return found;
};

async function screenshot(name: string): Promise<void> {
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: false });
}

/** Signs in as `name` with the page's user picker, as a person would. */
async function pickUser(name: string): Promise<void> {
  await page.locator('#user').selectOption(user(name).objectId);
  await expect.poll(() => page.locator('#title').textContent()).toContain(name);
}

/** The last message of the open conversation whose text contains `text`. */
function message(text: string | RegExp): Locator {
  return page.locator('#messages > li').filter({ hasText: text }).last();
}

async function waitForWeb01Backup(): Promise<void> {
  const deadline = Date.now() + 240_000;
  for (;;) {
    const points = await app.database.db
      .selectFrom('restore_points')
      .innerJoin('protected_items', 'protected_items.id', 'restore_points.item_id')
      .select('protected_items.name')
      .execute();
    if (points.some((p) => p.name === 'web-01')) return;
    if (Date.now() > deadline)
      throw new Error('web-01 was not backed up within 4 minutes of start-up');
    await new Promise((r) => setTimeout(r, 500));
  }
}

beforeAll(async () => {
  await fs.access(CHROMIUM).catch(() => {
    throw new Error(
      `${CHROMIUM} is missing: run "sh scripts/setup.sh test" to install Debian's chromium.`,
    );
  });
  await fs.mkdir(SCREENSHOTS, { recursive: true });

  dataDir = await tempDir('acba-chat-page-');
  profileDir = await fs.mkdtemp(path.join(os.tmpdir(), 'acba-chromium-'));
  const server = await createServerDatabase();
  dropDatabase = server?.drop;
  const config = loadConfig({
    PORT: '0',
    DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    ACBA_BACKUP_ON_START: '1',
    ...(server ? { DATABASE_URL: server.url } : {}),
  });
  app = await startApp(config, { sandboxImageCacheDir: path.resolve('test/.cache/images') });

  browser = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 860 },
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.setDefaultTimeout(15_000);

  await waitForWeb01Backup();
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await dropDatabase?.();
  await fs.rm(dataDir, { recursive: true, force: true });
  await fs.rm(profileDir, { recursive: true, force: true });
});

describe('a person walks a file restore through the sandbox chat page', () => {
  it('opens on a user picker that names each person, their role and their organisation', async () => {
    await page.goto(`${app.url}/sandbox/teams/`);
    const groupOf = (name: string) =>
      page
        .locator('#user option', { hasText: name })
        .evaluate((o) => `${(o.parentElement as HTMLOptGroupElement).label} / ${o.textContent}`);
    await expect
      .poll(() => groupOf('Alex Wilber'))
      .toMatch(/^Customer · Contoso \/ Alex Wilber · requester$/);
    expect(await groupOf('Adele Vance')).toMatch(
      /^Service provider · Fabrikam.* \/ Adele Vance · approver$/,
    );
    expect(await page.locator('#messages').textContent()).toContain('Pick a user');
    await screenshot('01-start');
  });

  it('lets Alex ask for a file, shows the request form as a card, and sends it with a reason', async () => {
    await pickUser('Alex Wilber');
    await page.locator('#text').fill('restore file /etc/nginx/nginx.conf from web-01');
    await page.locator('#text').press('Enter');

    const form = message('Restore a file');
    await form.locator('.ac-adaptiveCard').waitFor();
    expect(await form.textContent()).toContain('/etc/nginx/nginx.conf');

    // The card itself refuses a reason that is too short, before anything is sent.
    await form.getByLabel(/Why do you need this file/).fill('need it');
    await form.getByRole('button', { name: 'Send for approval' }).click();
    await form.getByText('Write at least 20 characters').waitFor();
    await screenshot('02-alex-reason-too-short');

    await form
      .getByLabel(/Why do you need this file/)
      .fill('The nginx configuration was overwritten by a bad deployment this morning.');
    await form.getByLabel(/Ticket/).fill('INC-4711');
    await screenshot('03-alex-form');

    await form.getByRole('button', { name: 'Send for approval' }).click();
    await message(/File restore request: /)
      .locator('.ac-adaptiveCard')
      .waitFor();
    expect(await message(/File restore request: /).textContent()).toMatch(/pending|waiting/i);
    await screenshot('04-alex-submitted');
  });

  it('shows Adele the approval card in the approvers channel and takes her written approval', async () => {
    await pickUser('Adele Vance');
    await page.locator('#conversations button', { hasText: 'Approvers' }).click();
    await expect.poll(() => page.locator('#title').textContent()).toContain('Approvers');

    const card = message('Approval needed');
    await card.locator('.ac-adaptiveCard').waitFor();
    expect(await card.textContent()).toContain('bad deployment');
    await card.getByLabel(/Your comment/).fill('Approved: matches incident INC-4711.');
    await screenshot('05-adele-approval');

    await card.getByRole('button', { name: 'Approve' }).click();
    const decided = message('Decided by');
    await decided.waitFor();
    expect(await decided.textContent()).toContain('Adele Vance');
    expect(await decided.textContent()).toContain('Approved: matches incident INC-4711.');
    await screenshot('06-adele-decided');
  });

  it('gives Alex a download link that serves the recovered file', async () => {
    await pickUser('Alex Wilber');
    // File recovery boots a libguestfs appliance over the restore point's disk.
    const link = page.locator('#messages a[href*="/downloads/"]').last();
    await link.waitFor({ timeout: 180_000 });
    await link.scrollIntoViewIfNeeded();
    await screenshot('07-alex-link');

    expect(await link.getAttribute('target')).toBe('_blank');
    const href = (await link.getAttribute('href'))!;
    expect(href).not.toMatch(/\.$/);
    const download = await fetch(new URL(href, page.url()));
    expect(download.status).toBe(200);
    expect(await download.text()).toContain('server {');
  }, 240_000);

  it('never offers Megan, a requester of the customer, the approvers channel', async () => {
    await pickUser('Megan Bowen');
    const conversations = await page.locator('#conversations button').allTextContents();
    expect(conversations.join(' ')).not.toMatch(/Approvers/);
    expect(await page.locator('#conversations').textContent()).toContain(
      "for the service provider's staff only",
    );
    await screenshot('08-megan');

    // Nor does the stand-in open it when asked directly.
    const refused = await page.evaluate(
      async ([objectId, conversationId]) => {
        const response = await fetch('api/open', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ user: objectId, conversationId }),
        });
        return { status: response.status, body: await response.json() };
      },
      [user('Megan Bowen').objectId, SANDBOX_APPROVERS_CONVERSATION] as const,
    );
    expect(refused.status).toBe(403);
    expect(refused.body.message).toMatch(/not a member/);
  });
});
