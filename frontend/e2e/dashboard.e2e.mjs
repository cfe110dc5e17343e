// End-to-end tests of the dashboard: Debian's chromium, driven by
// playwright-core, against the real daemon running its simulator.
// Run by scripts/e2e.sh; screenshots of each view go to
// frontend/e2e/screenshots/ (E2E_SCREENSHOTS overrides).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { chromium } from 'playwright-core';
import { Daemon, eventually } from './daemon.mjs';

const SIMULATED = 12;
const shots = resolve(process.env.E2E_SCREENSHOTS ?? join(import.meta.dirname, 'screenshots'));
mkdirSync(shots, { recursive: true });

let daemon;
let browser;
let page;
const pageErrors = [];

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

/**
 * Screenshots the view, and checks it with axe-core against WCAG 2.1 A and
 * AA (labels, roles, colour contrast, …): any violation fails the test.
 */
async function shot(name, on = page) {
  await on.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  await on.addScriptTag({ path: axePath });
  const violations = await on.evaluate(async () => {
    const result = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
    });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')),
    }));
  });
  assert.deepEqual(violations, [], `accessibility of ${name}`);
}

async function connection() {
  return (await page.getByTestId('connection').textContent())?.trim() ?? '';
}

/** Publishes one isobar JSON reading to the daemon's embedded MQTT server and waits for the broker's ack. */
async function publish(stationId, body) {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${daemon.mqttPort}`, {
    clientId: `e2e-${process.pid}-${Date.now()}`,
    protocolVersion: 4,
  });
  try {
    await client.publishAsync(`weather/${stationId}/observations`, JSON.stringify(body), { qos: 1 });
  } finally {
    await client.endAsync();
  }
}

before(async () => {
  daemon = await Daemon.start({ stations: SIMULATED });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 }, colorScheme: 'dark' });
  page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
});

after(async () => {
  await browser?.close();
  if (daemon !== undefined) {
    if (process.exitCode) console.error(daemon.logs());
    await daemon.close();
  }
});

describe('dashboard against the real daemon', { concurrency: false }, () => {
  it('loads, goes live and maps every simulated station', async () => {
    await page.goto(`${daemon.url}/`);
    await eventually('the live connection', async () => (await connection()) === 'Live');
    const dots = page.locator('[data-testid="station-map"] a[data-station]');
    await eventually(`${SIMULATED} stations on the map`, async () => (await dots.count()) === SIMULATED, 30_000);
    const ids = await dots.evaluateAll((els) => els.map((e) => e.getAttribute('data-station')));
    assert.deepEqual(
      ids.sort(),
      Array.from({ length: SIMULATED }, (_, i) => `WS${String(i + 1).padStart(3, '0')}`),
    );
    // Live tiles follow the stream.
    await eventually('a reading rate', async () => Number(await page.getByTestId('tile-rate').locator('.tile-value').textContent()) > 0);
    assert.equal((await page.getByTestId('tile-stations').locator('.tile-value').textContent())?.trim(), String(SIMULATED));
    await shot('overview');
  });

  it('shows a reading published over MQTT in its station’s chart within seconds', async () => {
    await page.goto(`${daemon.url}/#/stations/E2E01`);
    await page.getByRole('heading', { name: /E2E01/ }).waitFor();
    const chart = page.locator('[data-chart="temperature"] .chart');
    assert.equal(await chart.getAttribute('data-points'), '0');
    await publish('E2E01', {
      station_id: 'E2E01',
      latitude: 51.5,
      longitude: -0.12,
      elevation: 20,
      temperature: 31.5,
      humidity: 40,
      pressure: 1002.5,
      wind_speed: 12,
      wind_gust: 30.5,
      wind_direction: 270,
      timestamp: new Date().toISOString(),
    });
    const sent = Date.now();
    await eventually('the reading on the chart', async () => (await chart.getAttribute('data-points')) === '1', 10_000, 100);
    const took = Date.now() - sent;
    assert.ok(took < 10_000, `took ${took} ms`);
    const temperature = page.locator('[data-variable="temperature_c"] dd');
    assert.match((await temperature.textContent()) ?? '', /31\.5 °C/);
    assert.match((await page.locator('[data-variable="wind_gust_ms"] dd').textContent()) ?? '', /30\.5 m\/s/);
    // Imperial units are one click away.
    await page.getByTestId('units-toggle').click();
    assert.match((await temperature.textContent()) ?? '', /88\.7 °F/);
    await page.getByTestId('units-toggle').click();
    // Its history holds the reading too.
    await eventually(
      'the history chart',
      async () => (await page.locator('[data-testid="history"] .chart').getAttribute('data-points')) === '1',
    );
    await shot('station-new');
    // A simulated station's page, with minutes of readings.
    await page.goto(`${daemon.url}/#/stations/WS001`);
    await eventually(
      'live points on WS001',
      async () => Number(await page.locator('[data-chart="temperature"] .chart').getAttribute('data-points')) >= 5,
      20_000,
    );
    await shot('station');
  });

  it('shows the alert a rule raised', async () => {
    // The reading above had a 30.5 m/s gust: the default `gusts` rule (above 25 m/s) fires at once.
    await page.goto(`${daemon.url}/#/alerts`);
    const row = page.locator('[data-testid="alerts-table"] tr[data-rule="gusts"]').filter({ hasText: 'E2E01' });
    await eventually('the gusts alert', async () => (await row.count()) === 1, 15_000);
    assert.match((await row.textContent()) ?? '', /firing/);
    await shot('alerts');
    // The overview counts it.
    await page.goto(`${daemon.url}/#/`);
    await eventually('the firing tile', async () => Number(await page.getByTestId('tile-alerts').locator('.tile-value').textContent()) >= 1);
  });

  it('shows the supervision tree, the pipeline rates and the quarantine', async () => {
    await publish('E2E02', { station_id: 'E2E02', temperature: 'warm', timestamp: new Date().toISOString() });
    await page.goto(`${daemon.url}/#/system`);
    const tree = page.getByTestId('supervision-tree');
    await tree.waitFor();
    for (const name of ['pipeline', 'stations', 'ingest', 'web', 'persister', 'hub', 'aggregator']) {
      await tree.locator(`[data-child="${name}"]`).first().waitFor();
    }
    await eventually(
      'every station actor in the tree',
      async () => (await tree.locator('[data-group="stations"] [data-child]').count()) >= SIMULATED,
    );
    await eventually('the quarantined message', async () => (await page.getByTestId('quarantine-table').textContent())?.includes('E2E02'), 20_000);
    await eventually(
      'a pipeline rate',
      async () => /\d \/s/.test((await page.getByTestId('pipeline-rates').textContent()) ?? ''),
      20_000,
    );
    await shot('system');
  });

  it('works on a phone and in the light theme', async () => {
    await page.goto(`${daemon.url}/#/`);
    await page.getByTestId('theme-toggle').click();
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'light');
    await shot('overview-light');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.locator('[data-testid="station-map"] a[data-station]').first().waitFor();
    await shot('phone-overview');
    await page.goto(`${daemon.url}/#/stations/WS002`);
    await page.locator('[data-chart="temperature"] .chart').waitFor();
    // Nothing wider than the screen, on either view.
    for (const view of ['#/', '#/stations/WS002']) {
      await page.goto(`${daemon.url}/${view}`);
      await page.locator('main').waitFor();
      const wider = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(wider <= 0, `${view} is ${wider}px wider than a phone`);
    }
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone`);
    await shot('phone-station');
    await page.getByTestId('theme-toggle').click();
    await page.setViewportSize({ width: 1440, height: 1000 });
  });

  it('recovers its connection after the daemon restarts', async () => {
    await page.goto(`${daemon.url}/#/`);
    await eventually('the live connection', async () => (await connection()) === 'Live');
    await daemon.stop();
    await eventually('the lost connection to show', async () => (await connection()).startsWith('Reconnecting'), 10_000, 100);
    await shot('reconnecting');
    await daemon.spawn();
    await eventually('the connection to recover', async () => (await connection()) === 'Live', 40_000);
    // And the data flows again.
    const before = await page.locator('[data-station="WS001"] time').getAttribute('datetime');
    await eventually(
      'a new reading after the restart',
      async () => (await page.locator('[data-station="WS001"] time').getAttribute('datetime')) !== before,
      20_000,
    );
    assert.deepEqual(pageErrors, []);
  });
});

describe('dashboard against a daemon whose reads are protected', { concurrency: false }, () => {
  const READ_KEY = 'e2e-read-key-0123456789';
  let guarded;
  let context;
  let tab;

  before(async () => {
    guarded = await Daemon.start({
      stations: 3,
      extra: [
        '[web.auth]',
        'api_keys = ["e2e-ingest-key-0123456789"]',
        `read_keys = ["${READ_KEY}"]`,
        'protect_reads = true',
      ],
    });
    context = await browser.newContext({ viewport: { width: 1440, height: 1000 }, colorScheme: 'dark' });
    tab = await context.newPage();
    tab.on('pageerror', (err) => pageErrors.push(err.message));
  });

  after(async () => {
    await context?.close();
    await guarded?.close();
  });

  it('asks for a read key, then loads and goes live with it', async () => {
    await tab.goto(`${guarded.url}/`);
    const prompt = tab.getByRole('alert', { name: 'Read access' });
    await prompt.waitFor();
    assert.match((await prompt.textContent()) ?? '', /need a key that may read/);
    await shot('key-prompt', tab);
    await tab.getByRole('textbox', { name: 'Read key' }).fill(READ_KEY);
    await tab.getByRole('button', { name: 'Use key' }).click();
    // The page reloads with the key: REST with it, the websocket with a
    // ticket bought with it.
    await eventually(
      'the live connection',
      async () => ((await tab.getByTestId('connection').textContent())?.trim() ?? '') === 'Live',
      30_000,
    );
    const dots = tab.locator('[data-testid="station-map"] a[data-station]');
    await eventually('3 stations on the map', async () => (await dots.count()) === 3, 30_000);
    assert.equal(await prompt.count(), 0);
    assert.deepEqual(pageErrors, []);
  });
});
