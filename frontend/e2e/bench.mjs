// The dashboard under the load of a large network: the real daemon (release
// build) simulating BENCH_STATIONS stations (1,000) that each report every
// second, watched in Debian's chromium. Measures, for the overview and a
// station page, the time between frames, the main thread's long tasks
// (over 50 ms) and the page's JS heap. Run by scripts/bench-dashboard.sh.
import { chromium } from 'playwright-core';
import { Daemon, eventually } from './daemon.mjs';

const stations = Number(process.env.BENCH_STATIONS ?? 1000);
const seconds = Number(process.env.BENCH_SECONDS ?? 20);

/** Starts counting frames and long tasks in the page. */
async function startProbe(page) {
  await page.evaluate(() => {
    const probe = { frames: [], longTasks: [], stop: false };
    window.__probe = probe;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) probe.longTasks.push(e.duration);
    }).observe({ type: 'longtask', buffered: false });
    let last = performance.now();
    const tick = (t) => {
      probe.frames.push(t - last);
      last = t;
      if (!probe.stop) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
}

async function stopProbe(page) {
  return page.evaluate(() => {
    const p = window.__probe;
    p.stop = true;
    const heap = performance.memory ? performance.memory.usedJSHeapSize : null;
    return { frames: p.frames.slice(1), longTasks: p.longTasks, heap };
  });
}

function quantile(xs, q) {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

function report(name, { frames, longTasks, heap }, rate) {
  const total = frames.reduce((a, b) => a + b, 0) / 1000;
  const row = {
    view: name,
    fps: (frames.length / total).toFixed(1),
    'frame p50 ms': quantile(frames, 0.5).toFixed(1),
    'frame p95 ms': quantile(frames, 0.95).toFixed(1),
    'frame p99 ms': quantile(frames, 0.99).toFixed(1),
    'frames > 50 ms': frames.filter((f) => f > 50).length,
    'long tasks': longTasks.length,
    'long task ms total': longTasks.reduce((a, b) => a + b, 0).toFixed(0),
    'heap MiB': heap === null ? '—' : (heap / 1048576).toFixed(1),
    'readings/s shown': rate,
  };
  return row;
}

const daemon = await Daemon.start({ stations });
let browser;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--enable-precise-memory-info'],
  });
  const page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
  await page.goto(`${daemon.url}/`);
  const dots = page.locator('[data-testid="station-map"] a[data-station]');
  await eventually(`${stations} stations on the map`, async () => (await dots.count()) >= stations, 120_000, 1000);
  // Let the rate settle.
  await page.waitForTimeout(5000);
  const rows = [];
  await startProbe(page);
  await page.waitForTimeout(seconds * 1000);
  const rate = (await page.getByTestId('tile-rate').locator('.tile-value').textContent())?.trim();
  rows.push(report('overview', await stopProbe(page), rate));

  await page.goto(`${daemon.url}/#/stations/WS001`);
  await page.locator('[data-chart="temperature"] .chart').waitFor();
  await page.waitForTimeout(3000);
  await startProbe(page);
  await page.waitForTimeout(seconds * 1000);
  rows.push(report('station page', await stopProbe(page), '—'));

  console.log(`\ndashboard with ${stations} stations reporting every second, ${seconds} s per view (chromium ${browser.version()})`);
  console.table(rows);
} finally {
  await browser?.close();
  await daemon.close();
}
