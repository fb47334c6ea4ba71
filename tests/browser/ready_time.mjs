// The explorer's page load time, for bench/explore_bench.sh: opens REPORT_DIR/index.html in Debian
// chromium (puppeteer-core), waits for the page's data-ready attribute and prints the page's own
// time from navigation to ready (data-ready-ms), the time seen from outside, and the number of
// images. Median of --runs N fresh page loads (default 5).
//   node tests/browser/ready_time.mjs REPORT_DIR [--runs N]
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import puppeteer from 'puppeteer-core';

const args = process.argv.slice(2);
if (args.length < 1) {
  console.error('usage: ready_time.mjs REPORT_DIR [--runs N]');
  process.exit(2);
}
const runs = args.includes('--runs') ? Number(args[args.indexOf('--runs') + 1]) : 5;
const url = pathToFileURL(path.join(path.resolve(args[0]), 'index.html')).href;
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1400,900'],
});
const inside = [], outside = [];
let images = 0;
try {
  for (let r = 0; r < runs; ++r) {
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 900 });
    const t0 = Date.now();
    await page.goto(url);
    await page.waitForSelector('html[data-ready="1"]', { timeout: 30000 });
    outside.push(Date.now() - t0);
    inside.push(Number(await page.evaluate(() => document.documentElement.dataset.readyMs)));
    images = await page.evaluate(() => window.EXPLORE.images.path.length);
    await page.close();
  }
} finally {
  await browser.close();
}
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
console.log(`${images} images: ready in ${median(inside)} ms (page's own clock, median of ${runs}; ` +
            `${median(outside)} ms from outside)`);
