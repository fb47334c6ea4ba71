// The explorer's page: reads window.EXPLORE (data/report.js) and window.EXPLORE_RUN (run.js), both
// described in docs/EXPLORE.md, and draws the overview, a virtualised thumbnail grid with facets,
// the image detail, the evaluation, the embedding map and tags. Plain ES2020, no library, no
// network: the whole view state lives in the URL's '#' so a view is a link.
'use strict';
(function () {
  const E = window.EXPLORE;
  const RUN = window.EXPLORE_RUN || null;
  const $ = (id) => document.getElementById(id);

  function fail(msg) {
    const el = $('load-error');
    el.hidden = false;
    el.textContent = msg;
    console.error('explore: ' + msg);
  }
  if (!E || !E.images) {
    fail('data/report.js did not load: this page needs the report folder written by `explore`.');
    return;
  }

  // ---------------------------------------------------------------- data as typed arrays
  const IM = E.images;
  const N = IM.path.length;
  const CLASSES = E.classes || [];
  const C = CLASSES.length;
  const SPLITS = E.splits || [];
  const FLAGS = E.flag_names || [];
  const HAS_MODEL = !!(E.checkpoint && IM.pred && IM.prob);
  const col = (a, T) => (a ? T.from(a) : null);
  const D = {
    split: col(IM.split, Uint8Array), label: col(IM.label, Int16Array),
    w: col(IM.w, Int32Array), h: col(IM.h, Int32Array),
    brightness: col(IM.brightness, Float32Array), contrast: col(IM.contrast, Float32Array),
    blur: col(IM.blur, Float32Array), entropy: col(IM.entropy, Float32Array),
    gray: col(IM.gray, Uint8Array), flags: col(IM.flags, Uint32Array),
    exact: col(IM.exact, Int32Array), near: col(IM.near, Int32Array),
    emb: col(IM.emb, Float32Array), uniq: col(IM.uniq, Float32Array),
    pred: HAS_MODEL ? col(IM.pred, Int16Array) : null,
    prob: HAS_MODEL ? col(IM.prob, Float32Array) : null,
    mistake: HAS_MODEL ? col(IM.mistake, Float32Array) : null,
    self_conf: HAS_MODEL ? col(IM.self_conf, Float32Array) : null,
    hard: HAS_MODEL ? col(IM.hard, Float32Array) : null,
    margin: HAS_MODEL ? col(IM.margin, Float32Array) : null,
  };
  const splitIndex = new Map(SPLITS.map((s, k) => [s.name, k]));
  const flagBit = new Map(FLAGS.map((f, k) => [f, k]));
  const PALETTE = ['#4e79a7', '#59a14f', '#76b7b2', '#9c755f', '#e15759', '#f28e2b', '#b07aa1',
    '#edc948', '#ff9da7', '#17becf', '#bcbd22', '#8c564b'];
  const GREY = '#a0a0a0';
  const classColor = (c) => (c < 0 ? GREY : PALETTE[c % PALETTE.length]);
  const className = (c) => (c < 0 ? '(unlabelled)' : CLASSES[c] !== undefined ? CLASSES[c] : '?');
  const predName = (c) => (c < 0 ? '(not run)' : className(c));
  const UNREADABLE = new Map((E.unreadable || []).map((u) => [u.index, u.reason]));
  const absPath = (i) => SPLITS[D.split[i]].dir + '/' + IM.path[i];
  const fileUrl = (p) => 'file://' + p.split('/').map(encodeURIComponent).join('/');

  // ---------------------------------------------------------------- small DOM helpers
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const k in attrs) {
        const v = attrs[k];
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = v;
        else if (k === 'style') el.style.cssText = v;
        else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }
  const fmt = (x, d) => (x === undefined || x === null ? '–' : Number(x).toFixed(d));
  const int = (x) => Number(x).toLocaleString('en-US');

  // ---------------------------------------------------------------- thumbnails (CSS sprites)
  const T = E.thumbs || { side: 48, cols: 32, per_sheet: 1024, sheets: [] };
  const SHEET_URL = (T.sheets || []).map((s) => 'url("' + encodeURI(s) + '")');
  function sprite(el, i, z) {
    const sheet = Math.floor(i / T.per_sheet), cell = i % T.per_sheet;
    const c = cell % T.cols, r = Math.floor(cell / T.cols);
    el.style.backgroundImage = SHEET_URL[sheet] || 'none';
    el.style.backgroundSize = T.cols * z + 'px auto';
    el.style.backgroundPosition = -c * z + 'px ' + -r * z + 'px';
    return el;
  }
  const thumb = (i, z, extra) => sprite(h('div', Object.assign({ class: 'thumb', style: `width:${z}px;height:${z}px` }, extra || {})), i, z);

  // ---------------------------------------------------------------- tags (localStorage)
  const TAG_KEY = 'explore.tags:' + (E.data_root || '');
  let tags = new Map(); // name -> Set of image indices
  let tagStoreOk = true;
  let keyToIndex = null;
  const imageKey = (i) => SPLITS[D.split[i]].name + '\t' + IM.path[i];
  function loadTags() {
    let raw = null;
    try { raw = window.localStorage.getItem(TAG_KEY); } catch (e) { tagStoreOk = false; }
    if (!raw) return;
    let obj;
    try { obj = JSON.parse(raw); } catch (e) { return; }
    keyToIndex = new Map();
    for (let i = 0; i < N; i++) keyToIndex.set(imageKey(i), i);
    for (const name of Object.keys(obj)) {
      const set = new Set();
      for (const k of obj[name]) { const i = keyToIndex.get(k); if (i !== undefined) set.add(i); }
      tags.set(name, set);
    }
  }
  function saveTags() {
    const obj = {};
    for (const [name, set] of tags) obj[name] = Array.from(set).sort((a, b) => a - b).map(imageKey);
    try { window.localStorage.setItem(TAG_KEY, JSON.stringify(obj)); } catch (e) { tagStoreOk = false; }
  }

  // ---------------------------------------------------------------- state <-> URL '#'
  // Every facet and view setting; arrays are OR-ed within a facet, facets are AND-ed.
  const DEFAULT = { view: 'overview', split: [], label: [], pred: [], correct: [], flags: [], tag: [],
    list: '', box: null, q: '', sort: 'index', rev: false, img: -1 };
  const VIEWS = ['overview', 'grid', 'eval', 'map', 'tags'];
  const LISTS = { mistakenness: 'Mistakenness', confident_learning: 'Confident learning' };
  function encodeState(s) {
    const parts = [];
    const put = (k, arr) => { if (arr.length) parts.push(k + '=' + arr.map((x) => encodeURIComponent(String(x))).join(',')); };
    if (s.view !== 'overview') put('view', [s.view]);
    put('split', s.split); put('label', s.label); put('pred', s.pred); put('correct', s.correct);
    put('flags', s.flags); put('tag', s.tag);
    if (s.list) put('list', [s.list]);
    if (s.box) put('box', s.box.map((v) => +v.toFixed(4)));
    if (s.q) put('q', [s.q]);
    if (s.sort !== 'index') put('sort', [s.sort]);
    if (s.rev) put('rev', [1]);
    if (s.img >= 0) put('img', [s.img]);
    return parts.join('&');
  }
  function decodeState(hash) {
    const s = JSON.parse(JSON.stringify(DEFAULT));
    const text = (hash || '').replace(/^#/, '');
    const ints = (v, lo, hi) => v.map(Number).filter((x) => Number.isInteger(x) && x >= lo && x < hi);
    for (const part of text.split('&')) {
      if (!part) continue;
      const eq = part.indexOf('=');
      const k = eq < 0 ? part : part.slice(0, eq);
      let v;
      try { v = (eq < 0 ? '' : part.slice(eq + 1)).split(',').map(decodeURIComponent); } catch (e) { continue; }
      if (k === 'view' && VIEWS.includes(v[0])) s.view = v[0];
      else if (k === 'split') s.split = v.filter((x) => splitIndex.has(x));
      else if (k === 'label') s.label = ints(v, -1, C);
      else if (k === 'pred') s.pred = ints(v, 0, C);
      else if (k === 'correct') s.correct = ints(v, 0, 2);
      else if (k === 'flags') s.flags = v.filter((x) => flagBit.has(x));
      else if (k === 'tag') s.tag = v.filter((x) => x !== '');
      else if (k === 'list' && LISTS[v[0]] && E.label_errors) s.list = v[0];
      else if (k === 'box' && v.length === 4 && v.every((x) => isFinite(+x) && x !== '')) s.box = v.map(Number);
      else if (k === 'q') s.q = v.join(',');
      else if (k === 'sort' && SORTS.some((o) => o.key === v[0])) s.sort = v[0];
      else if (k === 'rev') s.rev = v[0] === '1';
      else if (k === 'img') { const i = Number(v[0]); if (Number.isInteger(i) && i >= 0 && i < N) s.img = i; }
    }
    return s;
  }

  // ---------------------------------------------------------------- sorting
  const SORTS = [
    { key: 'index', label: 'index', col: null, desc: false },
    { key: 'brightness', label: 'brightness', col: 'brightness', desc: false },
    { key: 'contrast', label: 'contrast', col: 'contrast', desc: false },
    { key: 'blur', label: 'blur', col: 'blur', desc: false },
    { key: 'entropy', label: 'entropy', col: 'entropy', desc: false },
    { key: 'uniqueness', label: 'uniqueness', col: 'uniq', desc: true },
  ];
  if (HAS_MODEL) {
    SORTS.push(
      { key: 'mistakenness', label: 'mistakenness', col: 'mistake', desc: true, missing: -1 },
      { key: 'self_confidence', label: 'self-confidence', col: 'self_conf', desc: false, missing: -1 },
      { key: 'hardness', label: 'hardness', col: 'hard', desc: true, missing: -1 },
      { key: 'margin', label: 'margin', col: 'margin', desc: false, missing: -1 });
  }
  if (E.label_errors) SORTS.push({ key: 'rank', label: 'label-error rank', col: null, desc: false });
  const listRank = {};
  if (E.label_errors) {
    for (const name of Object.keys(LISTS)) {
      const r = new Int32Array(N).fill(-1);
      (E.label_errors[name] || []).forEach((i, k) => { if (i >= 0 && i < N) r[i] = k; });
      listRank[name] = r;
    }
  }
  function sortItems(items, s) {
    const o = SORTS.find((x) => x.key === s.sort) || SORTS[0];
    const dir = (o.desc ? -1 : 1) * (s.rev ? -1 : 1);
    let key = null;
    if (o.key === 'rank' && s.list) {
      const r = listRank[s.list];
      key = new Float64Array(N);
      for (const i of items) key[i] = r[i] < 0 ? Infinity : dir * r[i];
    } else if (o.col && D[o.col]) {
      const k = D[o.col];
      key = new Float64Array(N);
      for (const i of items) key[i] = o.missing !== undefined && k[i] === o.missing ? Infinity : dir * k[i];
    }
    if (key) items.sort((a, b) => key[a] - key[b] || a - b);
    else if (dir < 0) items.reverse();
    return items;
  }

  // ---------------------------------------------------------------- filtering and facet counts
  const F = { split: 1, label: 2, pred: 4, correct: 8, flags: 16, tag: 32, list: 64, box: 128, q: 256 };
  const fails = new Uint16Array(N);
  let shown = new Uint32Array(0);
  let counts = null;
  function filter(s) {
    const splitOk = new Uint8Array(SPLITS.length).fill(s.split.length ? 0 : 1);
    for (const n of s.split) splitOk[splitIndex.get(n)] = 1;
    const labelOk = new Uint8Array(C + 1).fill(s.label.length ? 0 : 1);
    for (const c of s.label) labelOk[c + 1] = 1;
    const predOk = new Uint8Array(C + 1).fill(s.pred.length ? 0 : 1);
    for (const c of s.pred) predOk[c + 1] = 1;
    const corr = s.correct.length === 1 && HAS_MODEL ? s.correct[0] : -1;
    let flagMask = 0;
    for (const f of s.flags) flagMask |= 1 << flagBit.get(f);
    let tagOk = null;
    if (s.tag.length) {
      tagOk = new Uint8Array(N);
      for (const t of s.tag) for (const i of tags.get(t) || []) tagOk[i] = 1;
    }
    const rank = s.list ? listRank[s.list] : null;
    const box = s.box, emb = D.emb;
    const q = s.q.toLowerCase();
    const L = D.label, P = D.pred, FL = D.flags, SP = D.split;
    let nshown = 0;
    for (let i = 0; i < N; i++) {
      let f = 0;
      if (!splitOk[SP[i]]) f |= F.split;
      if (!labelOk[L[i] + 1]) f |= F.label;
      if (P && !predOk[P[i] + 1]) f |= F.pred;
      if (corr >= 0 && (L[i] < 0 || P[i] < 0 || (P[i] === L[i] ? 1 : 0) !== corr)) f |= F.correct;
      if (flagMask && !(FL[i] & flagMask)) f |= F.flags;
      if (tagOk && !tagOk[i]) f |= F.tag;
      if (rank && rank[i] < 0) f |= F.list;
      if (box) {
        const x = emb[2 * i], y = emb[2 * i + 1];
        if (x < box[0] || x > box[2] || y < box[1] || y > box[3]) f |= F.box;
      }
      if (q && IM.path[i].toLowerCase().indexOf(q) < 0) f |= F.q;
      fails[i] = f;
      if (!f) nshown++;
    }
    const out = new Uint32Array(nshown);
    const cnt = { split: new Int32Array(SPLITS.length), label: new Int32Array(C + 1),
      pred: new Int32Array(C + 1), correct: new Int32Array(2), flags: new Int32Array(FLAGS.length), tag: new Map() };
    let k = 0;
    for (let i = 0; i < N; i++) {
      const f = fails[i];
      if (!f) out[k++] = i;
      if (!(f & ~F.split)) cnt.split[SP[i]]++;
      if (!(f & ~F.label)) cnt.label[L[i] + 1]++;
      if (P && !(f & ~F.pred)) cnt.pred[P[i] + 1]++;
      if (P && !(f & ~F.correct) && L[i] >= 0 && P[i] >= 0) cnt.correct[P[i] === L[i] ? 1 : 0]++;
      if (!(f & ~F.flags)) {
        let m = FL[i];
        while (m) { const b = 31 - Math.clz32(m); cnt.flags[b]++; m &= ~(1 << b) >>> 0; }
      }
    }
    for (const [name, set] of tags) {
      let n = 0;
      for (const i of set) if (!(fails[i] & ~F.tag)) n++;
      cnt.tag.set(name, n);
    }
    counts = cnt;
    shown = sortItems(out, s);
  }

  // ---------------------------------------------------------------- the virtualised grid
  const grid = (function () {
    const el = h('div', { class: 'grid', tabindex: '0' });
    const sizer = h('div', { class: 'grid-sizer' });
    const empty = h('div', { class: 'grid-empty', text: 'No image matches these filters.' });
    el.append(sizer, empty);
    const pool = [];
    let items = new Uint32Array(0), z = 80, gap = 6, cols = 1, cell = 86, frame = 0, left = 6;
    try { z = Number(localStorage.getItem('explore.zoom')) || 80; } catch (e) { /* no storage */ }
    function layout() {
      cell = z + gap;
      cols = Math.max(1, Math.floor((el.clientWidth - gap) / cell));
      left = Math.max(gap, Math.floor((el.clientWidth - cols * cell + gap) / 2));
      sizer.style.height = Math.ceil(items.length / cols) * cell + gap + 'px';
      empty.hidden = items.length > 0;
      draw();
    }
    function visibleRange() {
      const top = el.scrollTop, hgt = el.clientHeight || 600;
      const r0 = Math.max(0, Math.floor(top / cell) - 2);
      const r1 = Math.ceil((top + hgt) / cell) + 2;
      return [r0 * cols, Math.min(items.length, r1 * cols)];
    }
    function draw() {
      frame = 0;
      const [a, b] = visibleRange();
      const need = b - a;
      while (pool.length < need) {
        const d = h('div', { class: 'cell' });
        d.append(h('span', { class: 'bar' }));
        sizer.append(d);
        pool.push(d);
      }
      const open = state.img;
      for (let j = 0; j < pool.length; j++) {
        const d = pool[j];
        if (j >= need) { if (!d.hidden) d.hidden = true; continue; }
        const k = a + j, i = items[k];
        d.hidden = false;
        const x = left + (k % cols) * cell, y = gap + Math.floor(k / cols) * cell;
        d.style.transform = `translate(${x}px,${y}px)`;
        if (d._i !== i || d._z !== z) {
          d._i = i; d._z = z;
          d.dataset.i = i;
          d.style.width = d.style.height = z + 'px';
          sprite(d, i, z);
          const lab = D.label[i];
          d.firstChild.style.background = classColor(lab);
          const wrong = D.pred && lab >= 0 && D.pred[i] >= 0 && D.pred[i] !== lab;
          d.classList.toggle('wrong', !!wrong);
          d.title = IM.path[i] + '\n' + SPLITS[D.split[i]].name + ' · ' + className(lab) +
            (D.pred ? ' → predicted ' + predName(D.pred[i]) : '');
        }
        d.classList.toggle('sel', selected[i] === 1);
        d.classList.toggle('open', open === i);
      }
    }
    el.addEventListener('scroll', () => { if (!frame) frame = requestAnimationFrame(draw); }, { passive: true });
    el.addEventListener('click', (ev) => {
      const d = ev.target.closest('.cell');
      if (!d) return;
      const i = Number(d.dataset.i);
      if (selectMode || ev.shiftKey || ev.ctrlKey || ev.metaKey) toggleSelect(i, ev.shiftKey);
      else go({ img: i });
    });
    return {
      el,
      mount(slot) { if (el.parentNode !== slot) slot.append(el); layout(); },
      set(newItems, resetScroll) { items = newItems; if (resetScroll) el.scrollTop = 0; layout(); },
      redraw: draw,
      layout,
      zoom(v) { z = v; try { localStorage.setItem('explore.zoom', String(v)); } catch (e) { /* none */ } layout(); },
      get zoomValue() { return z; },
      reveal(i) {
        const k = items.indexOf(i);
        if (k < 0 || !el.clientHeight) return;
        const y = Math.floor(k / cols) * cell;
        if (y < el.scrollTop || y + cell > el.scrollTop + el.clientHeight) el.scrollTop = y - el.clientHeight / 2;
        draw();
      },
      visibleSheets() {
        const [a, b] = visibleRange();
        const set = new Set();
        for (let k = a; k < b; k++) set.add(Math.floor(items[k] / T.per_sheet));
        return set;
      },
    };
  })();

  // ---------------------------------------------------------------- selection (for tagging)
  const selected = new Uint8Array(N);
  let nselected = 0, selectMode = false, lastClicked = -1;
  function toggleSelect(i, range) {
    if (range && lastClicked >= 0) {
      const a = shown.indexOf(lastClicked), b = shown.indexOf(i);
      if (a >= 0 && b >= 0) {
        for (let k = Math.min(a, b); k <= Math.max(a, b); k++) if (!selected[shown[k]]) { selected[shown[k]] = 1; nselected++; }
        lastClicked = i;
        selectionChanged();
        return;
      }
    }
    selected[i] ^= 1;
    nselected += selected[i] ? 1 : -1;
    lastClicked = i;
    selectionChanged();
  }
  function selectionChanged() {
    $('sel-count').textContent = int(nselected) + ' selected';
    grid.redraw();
  }

  // ---------------------------------------------------------------- state changes
  let state = decodeState('');
  let lastFilterKey = null;
  function filterKey(s) {
    return JSON.stringify([s.split, s.label, s.pred, s.correct, s.flags, s.tag, s.list, s.box, s.q, s.sort, s.rev]);
  }
  function apply(s) {
    const prev = state;
    state = s;
    const fk = filterKey(s);
    const changed = fk !== lastFilterKey;
    if (changed) { filter(s); lastFilterKey = fk; }
    renderSide();
    renderView(prev, changed);
    renderDetail();
  }
  // A change from the page: applied at once, then written to the '#' (one history entry).
  function go(patch, replace) {
    const s = Object.assign({}, state, patch);
    apply(s);
    const hash = encodeState(s);
    if (encodeState(decodeState(location.hash)) === hash) return;
    if (replace) history.replaceState(null, '', '#' + hash);
    else location.hash = hash;
  }
  window.addEventListener('hashchange', () => {
    const s = decodeState(location.hash);
    if (encodeState(s) !== encodeState(state)) apply(s);
  });
  const CLEAR = { split: [], label: [], pred: [], correct: [], flags: [], tag: [], list: '', box: null, q: '' };

  // ---------------------------------------------------------------- sidebar: count, facets
  function facet(title, key, entries, single) {
    // entries: [{value, label, count, color}]
    const cur = state[key];
    const box = h('fieldset', { class: 'facet', 'data-facet': key }, h('legend', { text: title }));
    for (const e of entries) {
      const on = cur.includes(e.value);
      const input = h('input', { type: 'checkbox', checked: on, 'data-value': e.value,
        onchange: () => {
          let next = cur.filter((x) => x !== e.value);
          if (!on) next = single ? [e.value] : cur.concat([e.value]);
          go({ [key]: next });
        } });
      box.append(h('label', { class: 'facet-row' + (e.count === 0 && !on ? ' zero' : '') }, input,
        e.color ? h('span', { class: 'swatch', style: 'background:' + e.color }) : null,
        h('span', { class: 'facet-name', text: e.label, title: e.title || null }),
        h('span', { class: 'facet-count', text: int(e.count), 'data-value': e.count })));
    }
    return box;
  }
  function renderSide() {
    $('grid-count').textContent = String(shown.length);
    $('grid-total').textContent = int(N);
    const fx = $('facets');
    fx.textContent = '';
    fx.append(facet('Split', 'split', SPLITS.map((s, k) => ({ value: s.name, label: s.name, count: counts.split[k] }))));
    const labs = CLASSES.map((c, k) => ({ value: k, label: c, count: counts.label[k + 1], color: classColor(k) }));
    if (SPLITS.some((s) => !s.labelled)) labs.push({ value: -1, label: '(unlabelled)', count: counts.label[0], color: GREY });
    fx.append(facet('Label', 'label', labs));
    if (HAS_MODEL) {
      fx.append(facet('Predicted', 'pred', CLASSES.map((c, k) => ({ value: k, label: c, count: counts.pred[k + 1], color: classColor(k) }))));
      fx.append(facet('Prediction', 'correct', [{ value: 1, label: 'correct', count: counts.correct[1] },
        { value: 0, label: 'incorrect', count: counts.correct[0] }], true));
    }
    fx.append(facet('Flags (any of)', 'flags', FLAGS.map((f, k) => ({ value: f, label: f.replace(/_/g, ' '),
      count: counts.flags[k], title: (E.flag_rules || {})[f] }))));
    if (tags.size || state.tag.length) {
      fx.append(facet('Tags', 'tag', Array.from(new Set([...tags.keys(), ...state.tag])).sort()
        .map((t) => ({ value: t, label: t, count: counts.tag.get(t) || 0 }))));
    }
    // active filters as removable chips
    const af = $('active-filters');
    af.textContent = '';
    const chip = (text, patch) => af.append(h('span', { class: 'chip' }, text,
      h('button', { class: 'x', title: 'remove', text: '×', onclick: () => go(patch) })));
    if (state.list) chip('label errors: ' + LISTS[state.list], { list: '', sort: state.sort === 'rank' ? 'index' : state.sort });
    if (state.box) chip('embedding box', { box: null });
    if (state.q) chip('path contains “' + state.q + '”', { q: '' });
    for (const k of ['split', 'label', 'pred', 'correct', 'flags', 'tag']) {
      for (const v of state[k]) {
        const name = k === 'label' || k === 'pred' ? className(v) : k === 'correct' ? (v ? 'correct' : 'incorrect') : v;
        chip((k === 'pred' ? 'predicted ' : k === 'label' ? 'label ' : '') + name, { [k]: state[k].filter((x) => x !== v) });
      }
    }
    $('clear-filters').hidden = !af.childNodes.length;
    const sel = $('sort');
    if (!sel.options.length) {
      for (const o of SORTS) sel.append(h('option', { value: o.key, text: o.label }));
    }
    sel.value = state.sort;
    const o = SORTS.find((x) => x.key === state.sort) || SORTS[0];
    const desc = o.desc !== state.rev;
    $('sort-dir').innerHTML = desc ? '&darr; desc' : '&uarr; asc';
    if (document.activeElement !== $('query')) $('query').value = state.q;
  }

  // ---------------------------------------------------------------- views
  const built = {};
  function renderView(prev, filterChanged) {
    for (const v of VIEWS) {
      $('view-' + v).hidden = v !== state.view;
      $('tab-' + v).classList.toggle('active', v === state.view);
    }
    if (state.view === 'grid') { grid.mount($('grid-slot')); grid.set(shown, filterChanged || prev.view !== 'grid'); }
    if (state.view === 'map') { grid.mount($('map-grid-slot')); grid.set(shown, filterChanged || prev.view !== 'map'); }
    if (!built[state.view]) { built[state.view] = true; BUILD[state.view](); }
    if (state.view === 'map') drawMap();
    if (state.view === 'eval') markCell();
    if (state.view === 'tags') renderTags();
  }
  const BUILD = { overview: buildOverview, grid: () => {}, eval: buildEval, map: buildMap, tags: () => {} };

  function section(title, ...kids) { return h('div', { class: 'card' }, h('h2', { text: title }), ...kids); }
  function kv(rows) {
    return h('table', { class: 'kv' }, rows.filter(Boolean).map(([k, v, attrs]) =>
      h('tr', null, h('th', { text: k }), h('td', attrs || null, v))));
  }
  // A 40-bin histogram as SVG, with the flag thresholds drawn as red lines.
  function histogram(name, p, digits) {
    const W = 300, H = 80, n = p.hist.length, max = Math.max(1, ...p.hist);
    const svg = ['<svg viewBox="0 0 ' + W + ' ' + (H + 16) + '" class="hist" role="img" aria-label="' + name + ' histogram">'];
    for (let k = 0; k < n; k++) {
      const bh = p.hist[k] ? Math.max(1, (p.hist[k] / max) * H) : 0;
      const lo = p.min + ((p.max - p.min) * k) / n, hi = p.min + ((p.max - p.min) * (k + 1)) / n;
      svg.push(`<rect x="${(k * W) / n + 0.5}" y="${H - bh}" width="${W / n - 1}" height="${bh}"><title>${fmt(lo, digits)} – ${fmt(hi, digits)}: ${p.hist[k]}</title></rect>`);
    }
    for (const t of [p.low, p.high]) {
      if (t === undefined || p.max <= p.min || t < p.min || t > p.max) continue;
      const x = ((t - p.min) / (p.max - p.min)) * W;
      svg.push(`<line x1="${x}" x2="${x}" y1="0" y2="${H}" class="thr"><title>threshold ${t}</title></line>`);
    }
    svg.push(`<text x="0" y="${H + 13}">${fmt(p.min, digits)}</text><text x="${W}" y="${H + 13}" text-anchor="end">${fmt(p.max, digits)}</text></svg>`);
    const box = h('div', { class: 'histbox' }, h('div', { class: 'hist-title' }, h('b', { text: name }),
      h('span', { class: 'muted', text: `  low ${fmt(p.low, digits)} · high ${fmt(p.high, digits)}` })));
    box.insertAdjacentHTML('beforeend', svg.join(''));
    return box;
  }
  function bar(frac, color) {
    return h('span', { class: 'inbar' }, h('span', { style: `width:${(Math.max(0, Math.min(1, frac)) * 100).toFixed(2)}%;background:${color || '#4e79a7'}` }));
  }

  function buildOverview() {
    const root = $('view-overview');
    const nbad = SPLITS.reduce((a, s) => a + (s.bad || []).length, 0);
    const dup = E.duplicates || {};
    let flagged = 0;
    for (let i = 0; i < N; i++) if (D.flags[i]) flagged++;
    const stat = (label, value, id) => h('div', { class: 'stat' }, h('div', { class: 'stat-v', id, 'data-value': value, text: int(value) }), h('div', { class: 'muted', text: label }));
    root.append(h('div', { class: 'stats' }, stat('images', N, 'stat-images'), stat('classes', C), stat('splits', SPLITS.length),
      stat('bad files', nbad, 'stat-bad'), stat('flagged images', flagged), stat('exact-duplicate groups', (dup.exact || []).length),
      stat('near-duplicate groups', (dup.near || []).length)));

    // class x split counts, with the model's predicted counts beside them
    const cnt = SPLITS.map(() => new Int32Array(C + 1));
    for (let i = 0; i < N; i++) cnt[D.split[i]][D.label[i] + 1]++;
    const rows = CLASSES.map((c, k) => ({ name: c, k }));
    if (SPLITS.some((s) => !s.labelled) || cnt.some((a) => a[0] > 0)) rows.push({ name: '(unlabelled)', k: -1 });
    const maxCount = Math.max(1, ...cnt.map((a) => Math.max(...a)));
    const hasPred = HAS_MODEL && E.predicted;
    const head = h('tr', null, h('th', { text: 'class' }), SPLITS.map((s) => [h('th', { class: 'num', text: s.name }),
      hasPred ? h('th', { class: 'num pred-col', text: 'predicted' }) : null]));
    const body = rows.map((r) => h('tr', null, h('th', null, h('span', { class: 'swatch', style: 'background:' + classColor(r.k) }), r.name),
      SPLITS.map((s, si) => {
        const v = cnt[si][r.k + 1];
        const pv = hasPred && r.k >= 0 && E.predicted[s.name] ? E.predicted[s.name][r.k] : null;
        return [h('td', { class: 'num count link-cell', 'data-split': s.name, 'data-class': r.k >= 0 ? r.name : '', 'data-value': v,
          title: 'show these in the grid', onclick: () => go(Object.assign({}, CLEAR, { view: 'grid', split: [s.name], label: [r.k] })) },
        h('span', { class: 'n', text: int(v) }), bar(v / maxCount, classColor(r.k))),
        hasPred ? h('td', { class: 'num pred-col', 'data-split': s.name, 'data-class': r.name, 'data-pred': pv === null ? '' : pv,
          text: pv === null ? '' : int(pv) }) : null];
      })));
    const total = h('tr', { class: 'total' }, h('th', { text: 'total' }), SPLITS.map((s, si) => [
      h('td', { class: 'num split-total', 'data-split': s.name, 'data-value': s.images, text: int(s.images) }),
      hasPred ? h('td', { class: 'num pred-col', text: E.predicted[s.name] ? int(E.predicted[s.name].reduce((a, b) => a + b, 0)) : '' }) : null]));
    root.append(section('Images per class and split', h('table', { class: 'tbl', id: 'class-split' }, h('thead', null, head), h('tbody', null, body, total)),
      hasPred ? h('p', { class: 'muted small', text: '“predicted”: how many images of the split the checkpoint assigns to each class.' }) : null));

    // splits: where they came from and what the loader ignored
    const splitRows = SPLITS.map((s) => {
      const bad = (s.bad || []).length, files = s.images + bad + (s.hidden || 0) + (s.other || 0);
      return h('tr', null, h('th', { text: s.name }), h('td', { class: 'path', text: s.dir }), h('td', { text: s.labelled ? 'yes' : 'no' }),
        h('td', { class: 'num split-images', 'data-split': s.name, 'data-value': s.images, text: int(s.images) }),
        h('td', { class: 'num split-bad', 'data-split': s.name, 'data-value': bad, text: int(bad) }),
        h('td', { class: 'num', text: int(s.hidden || 0) }), h('td', { class: 'num', text: int(s.other || 0) }),
        h('td', { class: 'num split-files', 'data-split': s.name, 'data-value': files, text: int(files) }));
    });
    root.append(section('Splits', h('table', { class: 'tbl', id: 'splits' }, h('thead', null, h('tr', null,
      ['split', 'folder', 'labelled', 'images', 'bad', 'hidden', 'other', 'files'].map((t, k) => h('th', { class: k > 2 ? 'num' : null, text: t })))),
    h('tbody', null, splitRows)), h('p', { class: 'muted small', text: 'files = usable images + bad files + hidden + other ignored entries, as the loader counted them.' })));

    // bad files
    const badRows = [];
    for (const s of SPLITS) for (const b of s.bad || []) badRows.push(h('tr', null, h('td', { text: s.name }), h('td', { class: 'path', text: b.path }), h('td', { text: b.reason })));
    // images the scan accepted but the decoder refused: they stay in the grid, flagged
    for (const [i, reason] of UNREADABLE) {
      badRows.push(h('tr', { class: 'link-cell', onclick: () => go({ img: i }) }, h('td', { text: SPLITS[D.split[i]].name }),
        h('td', { class: 'path', text: absPath(i) }), h('td', { text: 'unreadable (kept in the grid, flagged): ' + reason })));
    }
    root.append(section('Bad files (' + nbad + (UNREADABLE.size ? ' + ' + UNREADABLE.size + ' unreadable' : '') + ')', badRows.length ? h('table', { class: 'tbl', id: 'bad-files' },
      h('thead', null, h('tr', null, h('th', { text: 'split' }), h('th', { text: 'file' }), h('th', { text: 'reason' }))), h('tbody', null, badRows))
      : h('p', { class: 'muted', text: 'Every file decoded.' })));

    // sizes and their histograms
    const sizes = E.sizes || [];
    const sizeTbl = h('table', { class: 'tbl', id: 'sizes' }, h('thead', null, h('tr', null, h('th', { text: 'size (w × h)' }), h('th', { class: 'num', text: 'images' }))),
      h('tbody', null, sizes.slice(0, 30).map((z) => h('tr', null, h('td', { text: z.w + ' × ' + z.h }), h('td', { class: 'num', 'data-value': z.count, text: int(z.count) })))));
    const P = E.properties || {};
    const hists = h('div', { class: 'hists' });
    if (P.aspect) hists.append(histogram('aspect (w/h)', P.aspect, 3));
    if (P.area) hists.append(histogram('area (w·h pixels)', P.area, 0));
    root.append(section('Image sizes', h('div', { class: 'row-wrap' }, h('div', null, sizeTbl,
      sizes.length > 30 ? h('p', { class: 'muted small', text: (sizes.length - 30) + ' more sizes not listed' }) : null), hists)));

    // odd-size images
    const odd = [];
    const oddBit = flagBit.has('odd_size') ? 1 << flagBit.get('odd_size') : 0;
    if (oddBit) for (let i = 0; i < N; i++) if (D.flags[i] & oddBit) odd.push(i);
    const oddList = h('div', { class: 'strip' }, odd.slice(0, 120).map((i) => h('div', { class: 'strip-item', onclick: () => go({ img: i }) },
      thumb(i, 64), h('div', { class: 'small', text: D.w[i] + '×' + D.h[i] }), h('div', { class: 'small muted ellipsis', text: IM.path[i], title: absPath(i) }))));
    root.append(section('Odd-size images (' + odd.length + ')', odd.length ? oddList : h('p', { class: 'muted', text: 'None: every image has a common size.' }),
      odd.length > 120 ? h('button', { text: 'Show all ' + odd.length + ' in the grid', onclick: () => go(Object.assign({}, CLEAR, { view: 'grid', flags: ['odd_size'] })) }) : null));

    // image properties
    const ph = h('div', { class: 'hists' });
    for (const [k, d] of [['brightness', 2], ['contrast', 2], ['blur', 2], ['entropy', 3]]) if (P[k]) ph.append(histogram(k, P[k], d));
    root.append(section('Image properties', ph, h('p', { class: 'muted small', text: 'Red lines: the low and high thresholds the flags use.' })));

    // flags
    const fc = new Int32Array(FLAGS.length);
    for (let i = 0; i < N; i++) { let m = D.flags[i]; while (m) { const b = 31 - Math.clz32(m); fc[b]++; m &= ~(1 << b) >>> 0; } }
    root.append(section('Flags', h('table', { class: 'tbl', id: 'flags' }, h('thead', null, h('tr', null, h('th', { text: 'flag' }), h('th', { class: 'num', text: 'images' }), h('th', { text: 'rule' }))),
      h('tbody', null, FLAGS.map((f, k) => h('tr', null, h('td', null, h('a', { href: '#', onclick: (ev) => { ev.preventDefault(); go(Object.assign({}, CLEAR, { view: 'grid', flags: [f] })); }, text: f })),
        h('td', { class: 'num', 'data-flag': f, 'data-value': fc[k], text: int(fc[k]) }), h('td', { class: 'muted', text: (E.flag_rules || {})[f] || '' })))))));

    // duplicates
    const pairs = (dup.pairs || {});
    const pr = [];
    for (const [k, v] of Object.entries(pairs.within || {})) pr.push(['near pairs within ' + k, int(v)]);
    for (const [k, v] of Object.entries(pairs.across || {})) pr.push(['near pairs across ' + k, int(v)]);
    root.append(section('Duplicates', kv([['exact groups', int((dup.exact || []).length)], ['near groups', int((dup.near || []).length)],
      ['groups with conflicting labels', int((dup.conflicts || []).length)], ...pr,
      ['near means', 'dHash distance ≤ ' + dup.dhash_max + ' and pHash distance ≤ ' + dup.phash_max]])));

    // provenance
    const ck = E.checkpoint;
    root.append(section('Provenance', kv([
      ['data folder', E.data_root, { class: 'path', id: 'prov-data' }],
      ['per split', SPLITS.map((s) => s.name + ' ' + int(s.images)).join(' · ')],
      ['checkpoint', ck ? ck.path : 'none', { class: 'path', id: 'prov-ckpt' }],
      ck ? ['sha256', ck.sha256, { class: 'path', id: 'prov-sha' }] : null,
      ck ? ['model', `${ck.model}, image size ${ck.image_size}, width ${ck.width}` + (ck.weights ? ', weights ' + ck.weights : '')] : null,
      ['embedding', E.embedding ? `${E.embedding.source}, ${E.embedding.dim} dimensions` : '–'],
      ['engine version', E.engine_version, { id: 'prov-version' }],
      ['report format', String(E.format)],
      ['run time', RUN ? fmt(RUN.seconds, 1) + ' s' : '–', { id: 'prov-seconds', 'data-value': RUN ? RUN.seconds : '' }],
      ['finished', RUN ? RUN.finished : '–', { id: 'prov-finished' }],
      RUN && RUN.command ? ['command', RUN.command, { class: 'path' }] : null])));
  }

  // ---------------------------------------------------------------- evaluation
  function buildEval() {
    const root = $('view-eval');
    if (!HAS_MODEL || !E.evaluation) {
      root.append(section('Evaluation', h('p', { class: 'muted', text: 'No checkpoint was given: run explore with --checkpoint to see predictions, the evaluation and label-error candidates.' })));
      return;
    }
    for (const name of Object.keys(E.evaluation)) {
      const ev = E.evaluation[name];
      const cls = ev.classes || CLASSES;
      const metric = (label, id, v, d) => h('div', { class: 'stat' }, h('div', { class: 'stat-v', id: id + '-' + name, 'data-value': v, text: fmt(v, d) }), h('div', { class: 'muted', text: label }));
      const stats = h('div', { class: 'stats' }, metric('accuracy', 'acc', ev.accuracy, 4), metric('mean loss', 'loss', ev.loss, 4),
        metric('ECE (15 bins)', 'ece', ev.ece, 4), h('div', { class: 'stat' }, h('div', { class: 'stat-v', id: 'samples-' + name, 'data-value': ev.samples, text: int(ev.samples) }), h('div', { class: 'muted', text: 'images' })));
      const pc = h('table', { class: 'tbl', id: 'per-class-' + name }, h('thead', null, h('tr', null, h('th', { text: 'class' }),
        ['precision', 'recall', 'f1', 'support'].map((m) => h('th', { class: 'num', text: m })))),
      h('tbody', null, cls.map((c) => {
        const m = (ev.per_class || {})[c] || {};
        return h('tr', null, h('th', null, h('span', { class: 'swatch', style: 'background:' + classColor(cls.indexOf(c)) }), c),
          ['precision', 'recall', 'f1', 'support'].map((k) => h('td', { class: 'num', 'data-metric': k, 'data-class': c, 'data-split': name, 'data-value': m[k],
            text: k === 'support' ? int(m[k]) : fmt(m[k], 4) }, k !== 'support' ? bar(m[k], '#9bb7d4') : null)));
      })));
      const cm = ev.confusion_matrix || [];
      const cmt = h('table', { class: 'cm', id: 'cm-' + name },
        h('thead', null, h('tr', null, h('th', { class: 'corner', text: 'true ↓ / predicted →' }), cls.map((c) => h('th', { class: 'cm-head', text: c, title: c })))),
        h('tbody', null, cm.map((row, t) => {
          const rs = row.reduce((a, b) => a + b, 0) || 1;
          return h('tr', null, h('th', { text: cls[t] }), row.map((v, p) => {
            const frac = v / rs;
            const bg = t === p ? `rgba(89,161,79,${0.12 + 0.75 * frac})` : v ? `rgba(225,87,89,${0.1 + 0.8 * frac})` : '#fafafa';
            return h('td', { class: 'cm-cell num' + (frac > 0.55 ? ' dark' : ''), 'data-split': name, 'data-true': t, 'data-pred': p, 'data-count': v, 'data-value': v,
              style: 'background:' + bg, title: `${cls[t]} predicted as ${cls[p]}: ${v} (${(frac * 100).toFixed(1)}% of the row); click to show them`,
              onclick: () => go(Object.assign({}, CLEAR, { view: 'grid', split: [name], label: [t], pred: [p], img: -1 })) }, String(v));
          }));
        })));
      root.append(section('Evaluation on ' + name, stats, ev.data ? h('p', { class: 'muted small' }, 'images from ', h('code', { text: ev.data })) : null, h('div', { class: 'row-wrap' },
        h('div', null, h('h3', { text: 'Per class' }), pc),
        h('div', null, h('h3', { text: 'Confusion matrix' }), cmt, h('p', { class: 'muted small', text: 'Click a cell to show exactly those images in the grid.' })))));
    }
    if (E.label_errors) {
      const lists = h('div', { class: 'row-wrap' });
      for (const name of Object.keys(LISTS)) {
        const idx = E.label_errors[name] || [];
        const score = name === 'mistakenness' ? (i) => 'mistakenness ' + fmt(D.mistake[i], 4) : (i) => 'p[label] ' + fmt(D.self_conf[i], 4);
        lists.append(h('div', { class: 'errlist', id: 'errlist-' + name }, h('h3', null, LISTS[name] + ' ', h('span', { class: 'muted', text: '(' + int(idx.length) + ')' })),
          h('button', { class: 'show-list', 'data-list': name, text: 'Show all ' + int(idx.length) + ' in the grid, ranked',
            onclick: () => go(Object.assign({}, CLEAR, { view: 'grid', list: name, sort: 'rank', rev: false })) }),
          h('ol', { class: 'errs' }, idx.slice(0, 40).map((i) => h('li', { onclick: () => go({ img: i }) }, thumb(i, 48),
            h('div', null, h('div', { class: 'ellipsis', text: IM.path[i] }), h('div', { class: 'small' }, 'label ', h('b', { text: className(D.label[i]) }),
              ' → predicted ', h('b', { text: predName(D.pred[i]) })), h('div', { class: 'small muted', text: SPLITS[D.split[i]].name + ' · ' + score(i) })))))));
      }
      root.append(section('Label-error candidates', h('p', { class: 'muted small', text: 'Mistakenness (FiftyOne): labelled images whose confident prediction disagrees with the label, most mistaken first. Confident learning (cleanlab): images off the confident joint’s diagonal, lowest self-confidence first.' }), lists));
    }
  }
  function markCell() {
    for (const td of document.querySelectorAll('.cm-cell.selected')) td.classList.remove('selected');
    if (state.split.length === 1 && state.label.length === 1 && state.pred.length === 1) {
      const td = document.querySelector(`.cm-cell[data-split="${CSS.escape(state.split[0])}"][data-true="${state.label[0]}"][data-pred="${state.pred[0]}"]`);
      if (td) td.classList.add('selected');
    }
  }

  // ---------------------------------------------------------------- embedding map
  let mapBounds = null, drag = null, mapBase = null;
  function buildMap() {
    const src = E.embedding || {};
    $('map-source').textContent = 'Embedding: ' + (src.source || '?') + (src.dim ? ', ' + src.dim + '-d' : '') +
      (src.explained ? ' · PCA axes explain ' + src.explained.map((x) => (x * 100).toFixed(1) + '%').join(' and ') : '');
    const lg = $('map-legend');
    for (let k = 0; k < C; k++) lg.append(h('span', { class: 'legend' }, h('span', { class: 'swatch', style: 'background:' + classColor(k) }), CLASSES[k]));
    if (SPLITS.some((s) => !s.labelled)) lg.append(h('span', { class: 'legend' }, h('span', { class: 'swatch', style: 'background:' + GREY }), '(unlabelled)'));
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < N; i++) {
      const x = D.emb[2 * i], y = D.emb[2 * i + 1];
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
    if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
    if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
    const px = (x1 - x0) * 0.03, py = (y1 - y0) * 0.03;
    mapBounds = [x0 - px, y0 - py, x1 + px, y1 + py];
    const cv = $('map');
    const toData = (ev) => {
      const r = cv.getBoundingClientRect();
      return [(ev.clientX - r.left) / r.width, (ev.clientY - r.top) / r.height];
    };
    cv.addEventListener('mousedown', (ev) => { ev.preventDefault(); const p = toData(ev); drag = { a: p, b: p }; });
    window.addEventListener('mousemove', (ev) => { if (drag) { drag.b = toData(ev); drawMapOverlay(); } });
    window.addEventListener('mouseup', (ev) => {
      if (!drag) return;
      const d = drag;
      drag = null;
      const r = cv.getBoundingClientRect();
      const dx = Math.abs(d.a[0] - d.b[0]) * r.width, dy = Math.abs(d.a[1] - d.b[1]) * r.height;
      if (dx < 4 && dy < 4) { // a click: open the nearest shown point
        const i = nearestPoint(d.a, r);
        if (i >= 0) go({ img: i });
        else drawMapOverlay();
        return;
      }
      const [bx0, by0, bx1, by1] = mapBounds;
      const X = (f) => bx0 + f * (bx1 - bx0), Y = (f) => by1 - f * (by1 - by0);
      const xs = [X(d.a[0]), X(d.b[0])].sort((a, b) => a - b), ys = [Y(d.a[1]), Y(d.b[1])].sort((a, b) => a - b);
      go({ box: [xs[0], ys[0], xs[1], ys[1]] });
    });
    $('map-clear').addEventListener('click', () => go({ box: null }));
  }
  function mapXY(i, W, H) {
    const [x0, y0, x1, y1] = mapBounds;
    return [((D.emb[2 * i] - x0) / (x1 - x0)) * W, (1 - (D.emb[2 * i + 1] - y0) / (y1 - y0)) * H];
  }
  function nearestPoint(f, r) {
    let best = -1, bd = 64;
    for (const i of shown) {
      const [x, y] = mapXY(i, r.width, r.height);
      const d = (x - f[0] * r.width) ** 2 + (y - f[1] * r.height) ** 2;
      if (d < bd) { bd = d; best = i; }
    }
    return best;
  }
  function drawMap() {
    const cv = $('map');
    const wrap = cv.parentNode;
    const side = Math.max(240, Math.min(wrap.clientWidth - 4, (window.innerHeight || 800) - 190));
    const dpr = window.devicePixelRatio || 1;
    cv.style.width = cv.style.height = side + 'px';
    cv.width = cv.height = Math.round(side * dpr);
    const W = cv.width, H = cv.height;
    // the points go to an offscreen canvas, copied back under the box while dragging
    if (!mapBase) mapBase = document.createElement('canvas');
    mapBase.width = W;
    mapBase.height = H;
    const ctx = mapBase.getContext('2d');
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, W, H);
    const r = Math.max(1.5, Math.min(4, 600 / Math.sqrt(N + 1))) * dpr;
    // points the facets hide in pale grey; those only outside the box faded in their class's
    // colour (the map keeps its shape while a box is drawn); the shown ones on top
    ctx.fillStyle = '#e3e3e3';
    for (let i = 0; i < N; i++) if (fails[i] & ~F.box) { const [x, y] = mapXY(i, W, H); ctx.fillRect(x - r / 2, y - r / 2, r, r); }
    const byClass = new Map();
    for (let i = 0; i < N; i++) {
      if (fails[i] & ~F.box) continue;
      const c = D.label[i];
      if (!byClass.has(c)) byClass.set(c, [[], []]);
      byClass.get(c)[fails[i] ? 0 : 1].push(i);
    }
    const classes = Array.from(byClass).sort((a, b) => a[0] - b[0]);
    for (const pass of [0, 1]) {
      ctx.globalAlpha = pass ? 1 : 0.3;
      for (const [c, lists] of classes) {
        ctx.fillStyle = classColor(c);
        for (const i of lists[pass]) { const [x, y] = mapXY(i, W, H); ctx.fillRect(x - r / 2, y - r / 2, r, r); }
      }
    }
    ctx.globalAlpha = 1;
    if (state.img >= 0) {
      const [x, y] = mapXY(state.img, W, H);
      ctx.strokeStyle = '#000'; ctx.lineWidth = 2 * dpr;
      ctx.beginPath(); ctx.arc(x, y, 6 * dpr, 0, 7); ctx.stroke();
    }
    drawMapOverlay();
  }
  function drawMapOverlay() {
    const cv = $('map');
    if (!mapBase) return;
    const ctx = cv.getContext('2d');
    ctx.clearRect(0, 0, cv.width, cv.height);
    ctx.drawImage(mapBase, 0, 0);
    const W = cv.width, H = cv.height, dpr = window.devicePixelRatio || 1;
    ctx.lineWidth = 1.5 * dpr;
    ctx.setLineDash([5 * dpr, 4 * dpr]);
    ctx.strokeStyle = '#222';
    if (drag) {
      ctx.strokeRect(drag.a[0] * W, drag.a[1] * H, (drag.b[0] - drag.a[0]) * W, (drag.b[1] - drag.a[1]) * H);
    } else if (state.box) {
      const [x0, y0, x1, y1] = mapBounds;
      const bx = (v) => ((v - x0) / (x1 - x0)) * W, by = (v) => (1 - (v - y0) / (y1 - y0)) * H;
      ctx.strokeRect(bx(state.box[0]), by(state.box[3]), bx(state.box[2]) - bx(state.box[0]), by(state.box[1]) - by(state.box[3]));
    }
    ctx.setLineDash([]);
  }

  // ---------------------------------------------------------------- tags view
  function renderTags() {
    const root = $('view-tags');
    root.textContent = '';
    const names = Array.from(tags.keys()).sort();
    const rows = names.map((t) => h('tr', null, h('td', null, h('a', { href: '#', text: t, onclick: (ev) => { ev.preventDefault(); go(Object.assign({}, CLEAR, { view: 'grid', tag: [t] })); } })),
      h('td', { class: 'num tag-count', 'data-tag': t, 'data-value': tags.get(t).size, text: int(tags.get(t).size) }),
      h('td', null, h('button', { text: 'Delete', onclick: () => { if (confirm('Delete the tag “' + t + '”?')) { tags.delete(t); saveTags(); refresh(); } } }))));
    root.append(section('Tags', h('p', { class: 'muted small' }, 'Select images in the grid (turn on “Select mode”, or Ctrl/⌘-click; Shift-click selects a range), type a tag name and press “Tag selected”. ',
      'Tags are kept in this browser (localStorage) for the data folder ', h('code', { text: E.data_root }), '.',
      tagStoreOk ? '' : ' This browser refused the storage: tags last until the page is closed.'),
    names.length ? h('table', { class: 'tbl', id: 'tag-table' }, h('thead', null, h('tr', null, h('th', { text: 'tag' }), h('th', { class: 'num', text: 'images' }), h('th'))), h('tbody', null, rows))
      : h('p', { class: 'muted', text: 'No tags yet.' }),
    h('p', null, h('button', { id: 'tags-csv', text: 'Download tags as CSV', disabled: !names.length, onclick: downloadCsv }))));
  }
  function csvField(s) { return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s; }
  function tagsCsv() {
    const lines = ['path,split,label,tag'];
    for (const t of Array.from(tags.keys()).sort()) {
      for (const i of Array.from(tags.get(t)).sort((a, b) => a - b)) {
        const lab = D.label[i] >= 0 ? CLASSES[D.label[i]] : '';
        lines.push([absPath(i), SPLITS[D.split[i]].name, lab, t].map(csvField).join(','));
      }
    }
    return lines.join('\n') + '\n';
  }
  function downloadCsv() {
    const url = URL.createObjectURL(new Blob([tagsCsv()], { type: 'text/csv' }));
    const a = h('a', { href: url, download: 'tags.csv' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }
  function tagSelected(add) {
    const name = $('tag-name').value.trim();
    if (!name) { $('tag-name').focus(); return; }
    if (!nselected) { alert('Select some images first (Select mode, or Ctrl/⌘-click).'); return; }
    if (!tags.has(name)) tags.set(name, new Set());
    const set = tags.get(name);
    for (let i = 0; i < N; i++) if (selected[i]) { if (add) set.add(i); else set.delete(i); }
    if (!set.size) tags.delete(name);
    saveTags();
    refresh();
  }
  // Re-filter with the same state (tags changed under a tag filter).
  function refresh() { lastFilterKey = null; apply(state); }

  // ---------------------------------------------------------------- detail panel
  function renderDetail() {
    const panel = $('detail');
    const i = state.img;
    if (document.body.classList.contains('with-detail') !== i >= 0) {
      document.body.classList.toggle('with-detail', i >= 0);
      if (state.view === 'grid' || state.view === 'map') grid.layout();  // the panel takes room
      if (state.view === 'map') drawMap();
    }
    if (i < 0) { panel.hidden = true; panel.textContent = ''; panel._i = -1; return; }
    if (panel._i === i && !panel.hidden) return;
    panel._i = i;
    panel.hidden = false;
    panel.style.top = $('top').offsetHeight + 'px';  // below the header: the tabs stay usable
    panel.textContent = '';
    const lab = D.label[i], pred = D.pred ? D.pred[i] : -1;
    const pos = shown.indexOf(i);
    const nav = h('div', { class: 'detail-nav' },
      h('button', { text: '← previous', disabled: pos <= 0, onclick: () => go({ img: shown[pos - 1] }, true) }),
      h('span', { class: 'muted', text: pos >= 0 ? `${int(pos + 1)} of ${int(shown.length)} shown` : 'not among the shown images' }),
      h('button', { text: 'next →', disabled: pos < 0 || pos >= shown.length - 1, onclick: () => go({ img: shown[pos + 1] }, true) }),
      h('span', { class: 'spacer' }),
      h('button', { id: 'detail-close', class: 'close', text: '× close', onclick: () => go({ img: -1 }) }));
    const fallback = () => { const t = thumb(i, 288, { class: 'thumb big' }); return h('div', null, t, h('div', { class: 'muted small', text: 'The full image is not reachable from here; this is its thumbnail.' })); };
    const img = h('img', { class: 'full', alt: IM.path[i], src: fileUrl(absPath(i)) });
    img.addEventListener('error', () => img.replaceWith(fallback()), { once: true });
    panel.append(nav, h('div', { class: 'imgwrap' }, img),
      h('div', { class: 'path', id: 'detail-path', 'data-index': i, text: absPath(i) }),
      kv([['index', String(i)], ['split', SPLITS[D.split[i]].name],
        ['label', h('span', null, h('span', { class: 'swatch', style: 'background:' + classColor(lab) }), className(lab)), { id: 'detail-label', 'data-value': lab }],
        D.pred ? ['prediction', h('span', null, h('span', { class: 'swatch', style: 'background:' + classColor(pred) }), predName(pred),
          lab >= 0 && pred >= 0 ? h('span', { class: pred === lab ? 'ok' : 'bad', text: pred === lab ? ' ✓ correct' : ' ✗ wrong' }) : null), { id: 'detail-pred', 'data-value': pred }] : null]));
    if (D.prob) {
      const probs = h('div', { class: 'probs' });
      for (let c = 0; c < C; c++) {
        const p = D.prob[i * C + c];
        probs.append(h('div', { class: 'prob' + (c === pred ? ' is-pred' : '') + (c === lab ? ' is-label' : '') },
          h('span', { class: 'pname', text: CLASSES[c] + (c === lab ? ' (label)' : '') }), bar(p, classColor(c)), h('span', { class: 'num', 'data-value': IM.prob[i * C + c], text: fmt(IM.prob[i * C + c], 4) })));
      }
      panel.append(h('h3', { text: 'Class probabilities' }), probs);
    }
    panel.append(h('h3', { text: 'Properties' }), kv([
      ['size', D.w[i] + ' × ' + D.h[i]], ['brightness', fmt(IM.brightness[i], 2)], ['contrast', fmt(IM.contrast[i], 2)],
      ['blur (Laplacian variance)', fmt(IM.blur[i], 2)], ['entropy', fmt(IM.entropy[i], 3) + ' bits'], ['grayscale', D.gray[i] ? 'yes' : 'no'],
      ['uniqueness', fmt(IM.uniq[i], 4)],
      D.mistake ? ['mistakenness', D.mistake[i] < 0 ? '–' : fmt(IM.mistake[i], 4)] : null,
      D.self_conf ? ['self-confidence', D.self_conf[i] < 0 ? '–' : fmt(IM.self_conf[i], 4)] : null,
      D.hard ? ['hardness (entropy, nats)', fmt(IM.hard[i], 4)] : null,
      D.margin ? ['margin (top-1 − top-2)', fmt(IM.margin[i], 4)] : null]));
    // flags with why
    const fl = h('ul', { class: 'flags', id: 'detail-flags' });
    const why = {
      dark: () => 'brightness ' + fmt(IM.brightness[i], 2), bright: () => 'brightness ' + fmt(IM.brightness[i], 2),
      blurry: () => 'blur ' + fmt(IM.blur[i], 2), low_information: () => 'entropy ' + fmt(IM.entropy[i], 3),
      odd_size: () => D.w[i] + ' × ' + D.h[i] + ', aspect ' + fmt(D.w[i] / D.h[i], 3), grayscale: () => 'no colour',
      mistakenness: () => D.mistake ? 'mistakenness ' + fmt(IM.mistake[i], 4) : '',
      confident_learning: () => D.self_conf ? 'p[label] ' + fmt(IM.self_conf[i], 4) + ', predicted ' + predName(pred) : '',
      unreadable: () => UNREADABLE.get(i) || 'could not be decoded',
    };
    for (let k = 0; k < FLAGS.length; k++) {
      if (!(D.flags[i] & (1 << k))) continue;
      const f = FLAGS[k];
      const rule = (E.flag_rules || {})[f];
      fl.append(h('li', { 'data-flag': f }, h('b', { text: f.replace(/_/g, ' ') }), why[f] ? ': ' + why[f]() : '',
        rule ? h('span', { class: 'muted', text: ' — rule: ' + rule }) : null));
    }
    panel.append(h('h3', { text: 'Flags' }), fl.childNodes.length ? fl : h('p', { class: 'muted', text: 'No flag.' }));
    const group = (title, g) => {
      // A large group (a chain of similar scenes) shows its first members only: the panel stays light.
      const others = g.filter((j) => j !== i), members = others.slice(0, 48);
      const more = others.length - members.length;
      return h('div', { class: 'group' }, h('h3', { text: title + ' (' + g.length + ' images' + (more ? ', the first 48 others shown' : '') + ')' }),
        h('div', { class: 'strip' }, members.map((j) => h('div', { class: 'strip-item', 'data-i': j, onclick: () => go({ img: j }) }, thumb(j, 72),
          h('div', { class: 'small ellipsis', text: SPLITS[D.split[j]].name + ' · ' + className(D.label[j]) }),
          h('div', { class: 'small muted ellipsis', text: IM.path[j], title: absPath(j) })))));
    };
    const dup = E.duplicates || {};
    if (D.exact[i] >= 0 && dup.exact && dup.exact[D.exact[i]]) panel.append(group('Exact duplicates', dup.exact[D.exact[i]]));
    if (D.near[i] >= 0 && dup.near && dup.near[D.near[i]]) panel.append(group('Near duplicates', dup.near[D.near[i]]));
    panel.scrollTop = 0;
    if (state.view === 'grid' || state.view === 'map') grid.reveal(i);
  }

  // ---------------------------------------------------------------- wiring
  function wire() {
    $('root-path').textContent = E.data_root || '';
    document.title = 'Explorer · ' + (E.data_root || '').split('/').filter(Boolean).pop();
    for (const v of VIEWS) $('tab-' + v).addEventListener('click', () => go({ view: v }));
    $('sort').addEventListener('change', (ev) => go({ sort: ev.target.value, rev: false }));
    $('sort-dir').addEventListener('click', () => go({ rev: !state.rev }));
    $('clear-filters').addEventListener('click', () => go(CLEAR));
    let qt = 0;
    $('query').addEventListener('input', (ev) => {
      clearTimeout(qt);
      qt = setTimeout(() => go({ q: ev.target.value }, true), 200);
    });
    $('select-mode').addEventListener('change', (ev) => { selectMode = ev.target.checked; document.body.classList.toggle('selecting', selectMode); });
    $('select-all').addEventListener('click', () => { for (const i of shown) if (!selected[i]) { selected[i] = 1; nselected++; } selectionChanged(); });
    $('select-none').addEventListener('click', () => { selected.fill(0); nselected = 0; selectionChanged(); });
    $('tag-add').addEventListener('click', () => tagSelected(true));
    $('tag-remove').addEventListener('click', () => tagSelected(false));
    $('tag-name').addEventListener('keydown', (ev) => { if (ev.key === 'Enter') tagSelected(true); });
    const zoom = $('zoom');
    zoom.value = String(grid.zoomValue);
    zoom.addEventListener('input', () => grid.zoom(Number(zoom.value)));
    window.addEventListener('resize', () => {
      if (state.view === 'grid' || state.view === 'map') grid.layout();
      if (state.view === 'map') drawMap();
    });
    document.addEventListener('keydown', (ev) => {
      if (ev.target.closest && ev.target.closest('input,select,textarea')) return;
      if (state.img < 0) return;
      const pos = shown.indexOf(state.img);
      if (ev.key === 'Escape') go({ img: -1 });
      else if (ev.key === 'ArrowRight' && pos >= 0 && pos < shown.length - 1) go({ img: shown[pos + 1] }, true);
      else if (ev.key === 'ArrowLeft' && pos > 0) go({ img: shown[pos - 1] }, true);
    });
  }

  // Ready once the first view is drawn and the sprite sheets it shows have loaded.
  function whenVisibleSheetsLoaded() {
    if (state.view !== 'grid' && state.view !== 'map') return Promise.resolve();
    const waits = Array.from(grid.visibleSheets()).filter((k) => T.sheets[k]).map((k) => new Promise((res) => {
      const im = new Image();
      im.onload = im.onerror = res;
      im.src = T.sheets[k];
    }));
    return Promise.race([Promise.all(waits), new Promise((res) => setTimeout(res, 2000))]);
  }

  try {
    loadTags();
    wire();
    apply(decodeState(location.hash));
    whenVisibleSheetsLoaded().then(() => requestAnimationFrame(() => {
      document.documentElement.dataset.readyMs = String(Math.round(performance.now()));
      document.documentElement.dataset.ready = '1';
    }));
  } catch (e) {
    fail('the page failed to draw the report: ' + (e && e.stack ? e.stack : e));
  }
  // For tests and the console: the page's own reading of the report.
  window.explore = {
    get state() { return state; }, get shown() { return shown; }, tagsCsv, encodeState,
    mapPoint(i) { // where image i's point is drawn on the embedding map, in client pixels
      const r = $('map').getBoundingClientRect();
      const [x, y] = mapXY(i, r.width, r.height);
      return [r.left + x, r.top + y];
    },
  };
})();
