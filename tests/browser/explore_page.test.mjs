// The explorer's report page in a real browser (Debian chromium through puppeteer-core):
//   node explore_page.test.mjs REPORT_DIR EXPECTATIONS_JSON SCREENSHOT_DIR [options]
// EXPECTATIONS_JSON (written by run.sh from the dataset folders with `find`):
//   { "splits": { "<name>": { "dir": "/abs", "files": 123, "classes": { "<class>": 20, ... } } } }
// Options: --ready-ms N (default 3000): the page must set data-ready within N ms of navigation;
//   --missing-images-ok: the report's image paths do not exist (a synthetic report), so the detail
//   panel's fallback thumbnail is expected and the browser's failed file load is not an error;
//   --max-cells N (default all): confusion-matrix cells to click.
// Asserts: no console error or page exception; no request but file:, data: and blob:; ready in
// time; the split and class counts equal the folders'; each non-empty confusion-matrix cell filters
// the grid to exactly its images; each label-error list fills the grid in its order; a saved '#'
// reopens the same view and back/forward walk it; a thumbnail opens the detail; a box on the
// embedding map filters to the points in it; tags are kept, counted, filtered and exported; the
// grid stays virtualised while scrolling to the end.
// Screenshots go to SCREENSHOT_DIR. Exits 1 naming every failed check.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import puppeteer from 'puppeteer-core';

const args = process.argv.slice(2);
const positional = args.filter((a, k) => !a.startsWith('--') && !(k > 0 && ['--ready-ms', '--max-cells'].includes(args[k - 1])));
const opt = (name, dflt) => { const k = args.indexOf(name); return k >= 0 ? Number(args[k + 1]) : dflt; };
if (positional.length !== 3) {
  console.error('usage: explore_page.test.mjs REPORT_DIR EXPECTATIONS_JSON SCREENSHOT_DIR [--ready-ms N] [--missing-images-ok] [--max-cells N]');
  process.exit(2);
}
const [reportDir, expectPath, shotDir] = positional.map((p) => path.resolve(p));
const READY_MS = opt('--ready-ms', 3000);
const MAX_CELLS = opt('--max-cells', Infinity);
const MISSING_OK = args.includes('--missing-images-ok');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const expect = JSON.parse(fs.readFileSync(expectPath, 'utf8'));
const pageUrl = pathToFileURL(path.join(reportDir, 'index.html')).href;
const reportUrl = pathToFileURL(reportDir).href + '/';
fs.mkdirSync(shotDir, { recursive: true });

const failures = [];
const facts = {};
function check(ok, msg) {
  if (!ok) { failures.push(msg); console.log('FAIL ' + msg); }
  return ok;
}
async function step(name, fn) {
  const t0 = Date.now();
  try { await fn(); } catch (e) { failures.push(`${name}: ${e.message.split('\n')[0]}`); console.log(`FAIL ${name}: ${e.stack}`); }
  console.log(`step ${name}: ${Date.now() - t0} ms`);
}

const browser = await puppeteer.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1400,900'],
});
const consoleErrors = [];
const foreignRequests = [];
let requests = 0;
async function openPage(url) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 900 });
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const where = (m.location() && m.location().url) || '';
    // A synthetic report's images do not exist: the browser's own failed-load message for them
    // (never for a file of the report itself, which requestfailed below also catches).
    if (MISSING_OK && /ERR_FILE_NOT_FOUND/.test(m.text()) && where && !where.startsWith(reportUrl)) return;
    consoleErrors.push(m.text() + (where ? ' (' + where + ')' : ''));
  });
  page.on('pageerror', (e) => consoleErrors.push('exception: ' + e.message));
  page.on('request', (r) => {
    requests++;
    if (!/^(file|data|blob):/.test(r.url())) foreignRequests.push(r.url());
  });
  page.on('requestfailed', (r) => { if (r.url().startsWith(reportUrl)) consoleErrors.push('failed to load ' + r.url()); });
  const t0 = Date.now();
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForFunction(() => document.documentElement.dataset.ready === '1', { timeout: READY_MS + 10000, polling: 20 });
  const wall = Date.now() - t0;
  const inPage = await page.evaluate(() => Number(document.documentElement.dataset.readyMs));
  return { page, wall, inPage };
}
const gridCount = (page) => page.$eval('#grid-count', (e) => Number(e.textContent));
async function waitCount(page, n, what) {
  try {
    await page.waitForFunction((n) => Number(document.getElementById('grid-count').textContent) === n, { timeout: 3000, polling: 20 }, n);
  } catch (e) {
    check(false, `${what}: #grid-count is ${await gridCount(page)}, expected ${n}`);
    return false;
  }
  return true;
}
const shot = (page, name) => page.screenshot({ path: path.join(shotDir, name + '.png') });

let page;
await step('load', async () => {
  const r = await openPage(pageUrl);
  page = r.page;
  facts.ready_ms = r.inPage;
  facts.ready_wall_ms = r.wall;
  check(r.inPage <= READY_MS, `data-ready after ${r.inPage} ms of navigation, limit ${READY_MS} ms`);
  facts.images = await page.evaluate(() => window.EXPLORE.images.path.length);
  await shot(page, 'overview');
});
if (!page) { console.log('FAILED: the page did not load'); await browser.close(); process.exit(1); }

await step('counts', async () => {
  const dom = await page.evaluate(() => {
    const v = (sel) => Array.from(document.querySelectorAll(sel)).map((e) => [e.dataset.split, e.dataset.class, Number(e.dataset.value)]);
    return { files: v('.split-files'), images: v('.split-images'), cells: v('#class-split td.count'),
      bad: window.EXPLORE.splits.map((s) => [s.name, s.dir, s.bad.map((b) => b.path)]) };
  });
  const files = new Map(dom.files.map(([s, , n]) => [s, n]));
  const images = new Map(dom.images.map(([s, , n]) => [s, n]));
  const cell = new Map(dom.cells.map(([s, c, n]) => [s + '/' + c, n]));
  const bad = new Map(dom.bad.map(([s, d, b]) => [s, { dir: d, paths: b }]));
  check(files.size === Object.keys(expect.splits).length, `splits on the page (${[...files.keys()]}) differ from the folders (${Object.keys(expect.splits)})`);
  for (const [name, e] of Object.entries(expect.splits)) {
    check(files.get(name) === e.files, `split ${name}: the page counts ${files.get(name)} files, the folder has ${e.files}`);
    const b = bad.get(name) || { paths: [] };
    let sum = 0;
    for (const [cls, n] of Object.entries(e.classes || {})) {
      const nbad = b.paths.filter((p) => p.startsWith(e.dir + '/' + cls + '/')).length;
      sum += n - nbad;
      check(cell.get(name + '/' + cls) === n - nbad, `split ${name} class ${cls}: the page shows ${cell.get(name + '/' + cls)} images, the folder has ${n} files (${nbad} bad)`);
    }
    if (e.classes && Object.keys(e.classes).length) check(images.get(name) === sum, `split ${name}: ${images.get(name)} images on the page, ${sum} in the class folders`);
  }
});

await step('confusion matrix', async () => {
  await page.click('#tab-eval');
  const cells = await page.$$eval('.cm-cell', (els) => els.map((e) => ({ split: e.dataset.split, t: +e.dataset.true, p: +e.dataset.pred, n: +e.dataset.count })));
  const splits = await page.evaluate(() => Object.keys(window.EXPLORE.evaluation || {}));
  if (!check(cells.length > 0, 'no confusion-matrix cell on the page (is the checkpoint part missing?)')) return;
  // the matrix against the report's own per-image labels and predictions
  const bad = await page.evaluate(() => {
    const E = window.EXPLORE, I = E.images, out = [];
    for (const [name, ev] of Object.entries(E.evaluation)) {
      const s = E.splits.findIndex((x) => x.name === name);
      const C = E.classes.length, m = Array.from({ length: C }, () => new Array(C).fill(0));
      for (let i = 0; i < I.path.length; i++) if (I.split[i] === s && I.label[i] >= 0 && I.pred[i] >= 0) m[I.label[i]][I.pred[i]]++;
      if (JSON.stringify(m) !== JSON.stringify(ev.confusion_matrix)) out.push(name);
      const acc = document.getElementById('acc-' + name);
      if (!acc || Number(acc.dataset.value) !== ev.accuracy) out.push(name + ' accuracy');
      // every number of the page's per-class table and matrix, against evaluate's JSON fields
      const metrics = document.querySelectorAll(`td[data-metric][data-split="${name}"]`);
      if (metrics.length !== 4 * C) out.push(`${name}: ${metrics.length} per-class cells, not ${4 * C}`);
      for (const td of metrics) {
        const want = ((ev.per_class || {})[td.dataset.class] || {})[td.dataset.metric];
        if (Number(td.dataset.value) !== want) out.push(`${name} ${td.dataset.class} ${td.dataset.metric}`);
      }
      const shown = document.querySelectorAll(`.cm-cell[data-split="${name}"]`);
      if (shown.length !== C * C) out.push(`${name}: ${shown.length} matrix cells, not ${C * C}`);
      for (const td of shown) {
        if (Number(td.dataset.count) !== ev.confusion_matrix[+td.dataset.true][+td.dataset.pred]) out.push(`${name} cell ${td.dataset.true},${td.dataset.pred}`);
      }
    }
    return out;
  });
  check(bad.length === 0, `evaluation of ${bad.join(', ')} disagrees with images.label/pred or is not shown exactly`);
  const nonEmpty = cells.filter((c) => c.n > 0);
  check(nonEmpty.length >= 2, `only ${nonEmpty.length} non-empty confusion-matrix cells`);
  const pick = nonEmpty.length <= MAX_CELLS ? nonEmpty
    : nonEmpty.filter((c, k) => k % Math.ceil(nonEmpty.length / MAX_CELLS) === 0);
  for (const c of pick) {
    await page.click('#tab-eval');
    await page.click(`.cm-cell[data-split="${c.split}"][data-true="${c.t}"][data-pred="${c.p}"]`);
    if (!(await waitCount(page, c.n, `cell ${c.split} true ${c.t} pred ${c.p}`))) continue;
    const wrong = await page.evaluate((c) => {
      const E = window.EXPLORE, I = E.images, s = E.splits.findIndex((x) => x.name === c.split);
      return Array.from(window.explore.shown).filter((i) => I.split[i] !== s || I.label[i] !== c.t || I.pred[i] !== c.p).length;
    }, c);
    check(wrong === 0, `cell ${c.split} ${c.t}->${c.p}: ${wrong} shown images are not of that cell`);
    const visible = await page.$$eval('#view-grid .cell:not([hidden])', (els) => els.length);
    check(visible > 0, `cell ${c.split} ${c.t}->${c.p}: the grid shows no thumbnail`);
  }
  facts.cm_cells_clicked = pick.length;
  // the label-error lists: each fills the grid with exactly its images, in its order
  for (const name of ['mistakenness', 'confident_learning']) {
    await page.click('#tab-eval');
    const want = await page.evaluate((n) => (window.EXPLORE.label_errors || {})[n] || null, name);
    if (!check(want !== null, `label_errors.${name} is missing`)) continue;
    await page.click(`.show-list[data-list="${name}"]`);
    if (!(await waitCount(page, want.length, `label errors ${name}`))) continue;
    const got = await page.evaluate(() => Array.from(window.explore.shown));
    check(JSON.stringify(got) === JSON.stringify(want), `label errors ${name}: the grid's order differs from the report's ranking`);
  }
  facts.eval_splits = splits;
  await page.click('#tab-eval');
  await page.click(`.cm-cell[data-split="${nonEmpty[0].split}"][data-true="${nonEmpty[0].t}"][data-pred="${nonEmpty[0].p}"]`);
  await page.click('#tab-eval');
  await shot(page, 'confusion_matrix');
});

await step('saved view in the #', async () => {
  await page.evaluate(() => { location.hash = ''; });
  await page.click('#clear-filters').catch(() => {});
  await page.click('#tab-grid');
  const total = await gridCount(page);
  const splitName = await page.evaluate(() => {
    const E = window.EXPLORE;
    return (E.splits.find((s) => s.labelled && s.images > 0) || E.splits[0]).name;
  });
  await page.click(`fieldset[data-facet="split"] input[data-value="${splitName}"]`);
  const afterSplit = await gridCount(page);
  check(afterSplit < total || (await page.evaluate(() => window.EXPLORE.splits.length)) === 1, `ticking split ${splitName} left all ${total} images`);
  await page.click('fieldset[data-facet="label"] input[data-value="0"]');
  await page.click('fieldset[data-facet="label"] input[data-value="1"]');
  await page.select('#sort', 'blur');
  await page.click('#sort-dir');
  const view = async (p) => p.evaluate(() => ({
    hash: location.hash,
    count: Number(document.getElementById('grid-count').textContent),
    checked: Array.from(document.querySelectorAll('#facets input:checked')).map((e) => e.closest('fieldset').dataset.facet + '=' + e.dataset.value),
    sort: document.getElementById('sort').value,
    first: Array.from(window.explore.shown.slice(0, 20)),
    view: document.querySelector('#tabs .active').dataset.view,
  }));
  const before = await view(page);
  check(before.hash.includes('split=' + encodeURIComponent(splitName)) && before.hash.includes('sort=blur'), `the # does not hold the view: ${before.hash}`);
  const r = await openPage(pageUrl + before.hash);
  const after = await view(r.page);
  check(JSON.stringify(after) === JSON.stringify(before), `reopening ${before.hash} gave ${JSON.stringify(after)}, expected ${JSON.stringify(before)}`);
  await r.page.close();
  // back and forward walk the same states
  await page.goBack();
  await page.goBack();
  await page.goBack();
  await page.goBack();
  await waitCount(page, afterSplit, 'back three steps');
  check((await page.$$eval('#facets input:checked', (e) => e.length)) === 1, 'back: the label facets are still ticked');
  await page.goForward();
  await page.goForward();
  await page.goForward();
  await page.goForward();
  const fwd = await view(page);
  check(fwd.hash === before.hash && fwd.count === before.count, `forward: ${fwd.hash} (${fwd.count}), expected ${before.hash} (${before.count})`);
  facts.saved_hash = before.hash;
});

await step('detail', async () => {
  await page.click('#clear-filters').catch(() => {});
  await page.click('#tab-grid');
  const cell = await page.$('#view-grid .cell:not([hidden])');
  const i = Number(await cell.evaluate((e) => e.dataset.i));
  await cell.click();
  await page.waitForSelector('#detail:not([hidden]) #detail-path', { timeout: 3000 });
  const d = await page.evaluate(() => ({ path: document.getElementById('detail-path').textContent, hash: location.hash }));
  const want = await page.evaluate((i) => { const E = window.EXPLORE; return E.splits[E.images.split[i]].dir + '/' + E.images.path[i]; }, i);
  check(d.path === want, `the detail shows ${d.path}, expected ${want}`);
  check(d.hash.includes('img=' + i), `the open image is not in the #: ${d.hash}`);
  if (!MISSING_OK) {
    const loaded = await page.waitForFunction(() => { const im = document.querySelector('#detail img.full'); return im && im.complete && im.naturalWidth > 0; }, { timeout: 3000 }).then(() => true, () => false);
    check(loaded, `the full image ${want} did not load from file://`);
  }
  const probs = await page.$$eval('#detail .prob', (e) => e.length);
  const C = await page.evaluate(() => (window.EXPLORE.checkpoint ? window.EXPLORE.classes.length : 0));
  check(probs === C, `the detail shows ${probs} class probabilities, expected ${C}`);
  await shot(page, 'detail');
  await page.click('#detail-close');
  check(await page.$eval('#detail', (e) => e.hidden), 'the detail did not close');
});

await step('embedding box', async () => {
  await page.click('#tab-map');
  // a 120 x 90 px box around the point nearest the median of x (so it holds some points)
  const [px, py] = await page.evaluate(() => {
    const e = window.EXPLORE.images.emb, n = e.length / 2;
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => e[2 * a] - e[2 * b] || a - b);
    return window.explore.mapPoint(order[n >> 1]);
  });
  await page.mouse.move(px - 60, py - 45);
  await page.mouse.down();
  await page.mouse.move(px + 60, py + 45, { steps: 5 });
  await page.mouse.up();
  const r = await page.evaluate(() => {
    const s = window.explore.state, e = window.EXPLORE.images.emb;
    let n = 0;
    for (let i = 0; i < e.length / 2; i++) if (e[2 * i] >= s.box[0] && e[2 * i] <= s.box[2] && e[2 * i + 1] >= s.box[1] && e[2 * i + 1] <= s.box[3]) n++;
    return { box: s.box, n, count: Number(document.getElementById('grid-count').textContent), hash: location.hash };
  });
  check(r.box && r.n === r.count && r.hash.includes('box='), `box ${JSON.stringify(r.box)} holds ${r.n} points, the grid shows ${r.count} (${r.hash})`);
  check(r.n > 0, 'the box selected no point');
  facts.box_points = r.n;
  await shot(page, 'embedding');
  await page.click('#map-clear');
});

await step('tags', async () => {
  await page.click('#clear-filters').catch(() => {});
  await page.click('#tab-grid');
  await page.click('#select-mode');
  const cells = await page.$$('#view-grid .cell:not([hidden])');
  for (const c of cells.slice(0, 3)) await c.click();
  await page.click('#select-mode');
  await page.type('#tag-name', 'check me');
  await page.click('#tag-add');
  await page.click('#tab-tags');
  const n = await page.$eval('.tag-count[data-tag="check me"]', (e) => Number(e.dataset.value));
  check(n === 3, `tag "check me" counts ${n} images, expected 3`);
  const csv = await page.evaluate(() => window.explore.tagsCsv());
  const lines = csv.trim().split('\n');
  check(lines[0] === 'path,split,label,tag' && lines.length === 4 && lines.slice(1).every((l) => l.endsWith(',check me') && l.startsWith('/')),
    `tags CSV is not path,split,label,tag with 3 rows: ${JSON.stringify(lines)}`);
  await page.click('#tag-table a');
  await waitCount(page, 3, 'filter by tag');
  const stored = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('explore.tags:')));
  check(stored.length === 1, `tags are not in localStorage under one key per report: ${stored}`);
  await page.click('#tab-tags');
  await page.click('#tags-csv'); // a Blob download: must not touch the network
  await page.evaluate(() => localStorage.clear());
});

await step('virtualised scroll', async () => {
  await page.evaluate(() => { location.hash = 'view=grid'; });
  await waitCount(page, facts.images, 'all images');
  const r = await page.evaluate(async () => {
    const g = document.querySelector('#view-grid .grid');
    let maxCells = 0;
    const frames = [];
    const steps = 40;
    for (let k = 1; k <= steps; k++) {
      const t0 = performance.now();
      g.scrollTop = (g.scrollHeight * k) / steps;
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
      frames.push(performance.now() - t0);
      maxCells = Math.max(maxCells, document.querySelectorAll('.grid .cell').length);
    }
    const shown = window.explore.shown;
    const last = shown[shown.length - 1];
    const lastDrawn = Array.from(document.querySelectorAll('.grid .cell:not([hidden])')).some((e) => Number(e.dataset.i) === last);
    frames.sort((a, b) => a - b);
    return { maxCells, lastDrawn, medianFrame: frames[frames.length >> 1], worstFrame: frames[frames.length - 1] };
  });
  check(r.maxCells < 2000, `the grid keeps ${r.maxCells} thumbnails in the DOM (not virtualised)`);
  check(r.lastDrawn, 'scrolled to the end, the last image is not drawn');
  facts.scroll = r;
  await shot(page, 'grid');
});

check(consoleErrors.length === 0, `console errors: ${JSON.stringify(consoleErrors.slice(0, 10))}`);
check(foreignRequests.length === 0, `requests that are not file:/data:/blob: ${JSON.stringify(foreignRequests.slice(0, 10))}`);
await browser.close();
facts.requests = requests;
console.log('facts ' + JSON.stringify(facts));
if (failures.length) {
  console.log(`FAILED: ${failures.length} check(s):\n  ` + failures.join('\n  '));
  process.exit(1);
}
console.log(`PASSED: ${reportDir}: ready in ${facts.ready_ms} ms (limit ${READY_MS}), ${facts.images} images`);
