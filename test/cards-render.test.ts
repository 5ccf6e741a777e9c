/**
 * Every Adaptive Card template in bot/cards/, bound to realistic data through
 * bot/cards.ts (./support/card-samples.ts), then parsed and rendered in
 * headless Chromium by the official `adaptivecards` renderer, the bundle the
 * sandbox's Teams chat page serves. The renderer must report nothing (no
 * unknown element or action, no invalid property), every template must bind
 * all its expressions, declare a schema version Teams renders (1.5 at most)
 * and show the buttons its sample expects. The test walks the folder, so a
 * new template without sample data fails here until it has some.
 *
 * A screenshot of each card goes to test/.cache/screenshots/cards/.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cardSamples } from './support/card-samples.ts';
import { launchChromium, screenshotFolder } from './support/chromium.ts';

const templatesDir = fileURLToPath(new URL('../bot/cards/', import.meta.url));
const templates = fs
  .readdirSync(templatesDir)
  .filter((f) => f.endsWith('.json'))
  .map((f) => f.slice(0, -'.json'.length))
  .sort();

/** The newest schema version Teams renders. */
const maxVersion = 1.5;

// The same bundle sandbox/teams/index.ts serves to the chat page.
const rendererBundle = path.join(
  path.dirname(createRequire(import.meta.url).resolve('adaptivecards/package.json')),
  'dist',
  'adaptivecards.min.js',
);

const page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cards</title>
<style>body{margin:0;padding:16px;background:#f5f5f5;font-family:system-ui,sans-serif}
#card{width:560px;background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:4px}</style>
<script src="/adaptivecards.min.js"></script></head><body><div id="card"></div></body></html>`;

let server: http.Server;
let baseUrl: string;
let browser: Browser;
let tab: Page;
let shots: string;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (req.url === '/adaptivecards.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      fs.createReadStream(rendererBundle).pipe(res);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html' }).end(page);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  browser = await launchChromium();
  tab = await browser.newPage({ viewport: { width: 640, height: 400 } });
  await tab.goto(`${baseUrl}/`);
  await tab.waitForFunction(() => 'AdaptiveCards' in window);
  shots = await screenshotFolder('cards');
}, 60_000);

afterAll(async () => {
  await browser?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

interface Rendered {
  /** What AdaptiveCard.parse reported through its SerializationContext. */
  parseEvents: string[];
  /** What validateProperties found after parsing. */
  validationIssues: string[];
  buttons: string[];
}

/** Parses and renders the card with the official renderer into #card. */
function renderInPage(card: unknown): Promise<Rendered> {
  return tab.evaluate((json) => {
    const AC = (window as any).AdaptiveCards;
    const describe = (e: { event: number; message: string }) =>
      `${AC.ValidationEvent[e.event]}: ${e.message}`;

    const adaptiveCard = new AC.AdaptiveCard();
    adaptiveCard.hostConfig = new AC.HostConfig({ fontFamily: 'system-ui, sans-serif' });
    const context = new AC.SerializationContext();
    adaptiveCard.parse(json, context);
    const parseEvents: string[] = [];
    for (let i = 0; i < context.eventCount; i++) parseEvents.push(describe(context.getEventAt(i)));
    const validationIssues = adaptiveCard.validateProperties().validationEvents.map(describe);

    const element: HTMLElement = adaptiveCard.render();
    document.getElementById('card')!.replaceChildren(element);
    const buttons = [...element.querySelectorAll('button')].map(
      (b) => b.getAttribute('aria-label') ?? b.textContent?.trim() ?? '',
    );
    return { parseEvents, validationIssues, buttons };
  }, card);
}

/** Template expressions left in the bound card: data the sample (or bot/cards.ts) did not give. */
function unboundExpressions(card: unknown): string[] {
  return [...JSON.stringify(card).matchAll(/\$\{[^}]*\}/g)].map((m) => m[0]);
}

describe('Adaptive Card templates in bot/cards', () => {
  it('finds the templates', () => {
    expect(templates.length).toBeGreaterThan(0);
  });

  for (const name of templates) {
    it(`${name}.json binds its data and renders in the official renderer`, async () => {
      const template = JSON.parse(fs.readFileSync(path.join(templatesDir, `${name}.json`), 'utf8'));
      expect(template.type).toBe('AdaptiveCard');
      expect(
        Number(template.version),
        `${name}.json declares version ${template.version}; Teams renders ${maxVersion} at most`,
      ).toBeLessThanOrEqual(maxVersion);

      const sample = cardSamples[name];
      if (!sample)
        throw new Error(
          `bot/cards/${name}.json has no sample data: add an entry "${name}" to test/support/card-samples.ts that renders it through bot/cards.ts and lists its buttons.`,
        );
      const card = sample.render();
      expect(unboundExpressions(card), `${name}: expressions without data`).toEqual([]);

      const rendered = await renderInPage(card);
      expect(rendered.parseEvents, `${name}: the renderer's parse reported`).toEqual([]);
      expect(rendered.validationIssues, `${name}: the renderer's validation reported`).toEqual([]);
      expect(rendered.buttons, `${name}: buttons`).toEqual(sample.buttons);
      await tab.locator('#card').screenshot({ path: path.join(shots, `${name}.png`) });
    });
  }

  it('has no sample data for a template that no longer exists', () => {
    expect(Object.keys(cardSamples).filter((n) => !templates.includes(n))).toEqual([]);
  });
});
