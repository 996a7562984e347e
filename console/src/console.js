// The party node's console: the shell (session, masthead, navigation, alarm and exercise
// banners, status line, live updates) and the router that shows one view at a time.

import './console.css';
import * as api from './api.js';
import { h, fill, $ } from './dom.js';
import { instant, short } from './format.js';
import { can } from './markings.js';
import { parseHash, href } from './routes.js';
import { problemBox } from './widgets.js';
import { alarmWords } from './alarm.js';
import { statusNotes } from './status.js';
import { Live } from './live.js';
import * as login from './views/login.js';
import * as inbox from './views/inbox.js';
import * as report from './views/report.js';
import * as submit from './views/submit.js';
import * as consents from './views/consents.js';
import * as incidents from './views/incidents.js';
import * as keys from './views/keys.js';
import * as users from './views/users.js';
import * as audit from './views/audit.js';

// The sections, in the navigation's order, with the least role that sees them.
const SECTIONS = [
  { view: 'inbox', label: 'Inbox', role: 'officer', module: inbox },
  { view: 'submit', label: 'Submit', role: 'officer', module: submit },
  { view: 'consents', label: 'Consents', role: 'officer', module: consents },
  { view: 'incidents', label: 'Incidents', role: 'officer', module: incidents },
  { view: 'keys', label: 'Keys and ledger', role: 'officer', module: keys },
  { view: 'users', label: 'Users', role: 'admin', module: users },
  { view: 'audit', label: 'Audit log', role: 'admin', module: audit },
];
const VIEWS = {
  ...Object.fromEntries(SECTIONS.map((s) => [s.view, s])),
  deliveries: { view: 'deliveries', role: 'officer', module: report, parent: 'inbox' },
};

const ctx = {
  session: null,
  meta: null,
  status: null,
  live: null,
  view: null, // the view shown: {onEvent, destroy}
  shown: null, // the view and id drawn last ({view, id})
  heard: null, // the status last announced ({reachable, missing, exercise})
  delivered: new Set(), // deliveries announced in this page
  can: (needed) => can(ctx.session?.role, needed),
  go: (address) => {
    if (location.hash === address) route();
    else location.hash = address;
  },
  /** Re-read /api/status and redraw the banners and the status line. */
  refreshStatus: async () => {
    try {
      ctx.status = await api.get('/api/status');
    } catch (err) {
      if (err.status !== 401) showStatusProblem(err);
      return;
    }
    drawStatus();
  },
};

// --- session ---------------------------------------------------------------------------------

async function boot() {
  window.addEventListener('hashchange', route);
  // the skip link moves the focus to the content's heading; followed as a link, its "#main"
  // would replace the address that holds the view (the console routes with the fragment)
  $('.skip').addEventListener('click', (ev) => {
    ev.preventDefault();
    const main = $('#main');
    (main.querySelector('h1') ?? main).focus();
  });
  document.addEventListener('gsomia:unauthenticated', () => signedOut('Your session has ended. Sign in again to continue.'));
  try {
    ctx.session = await api.get('/api/session');
  } catch (err) {
    if (err.status === 401) {
      signedOut(null);
      return;
    }
    fill($('#main'), problemBox(err, 'The node did not answer:'));
    return;
  }
  await signedIn(ctx.session);
}

/** A session exists: read what every view needs, draw the shell, follow live events. */
async function signedIn(session) {
  // signed in from the form (not a session found on loading): the form that had the focus is
  // gone, so the first view's heading takes it
  if (ctx.view) ctx.routed = true;
  ctx.session = session;
  api.setCsrf(session.csrf);
  document.body.dataset.signedIn = '1';
  try {
    [ctx.meta, ctx.status] = await Promise.all([api.get('/api/meta'), api.get('/api/status')]);
  } catch (err) {
    if (err.status === 401) return;
    fill($('#main'), problemBox(err, 'The node could not say what it holds:'));
    return;
  }
  drawShell();
  drawStatus();
  ctx.live?.close();
  ctx.live = new Live(onEvent, onLiveDrop);
  ctx.live.open();
  if (parseHash(location.hash).view === 'login' || !location.hash) {
    const back = sessionStorage.getItem('gsomia.node.back');
    sessionStorage.removeItem('gsomia.node.back');
    ctx.go(back && back.startsWith('#/') && !back.startsWith('#/login') ? back : '#/inbox');
  } else route();
}

/** The event stream dropped: ask the node whether the session still stands (a 401 signs the
 * console out at once, as when an administrator revoked the user); if the browser gave up on
 * the stream while the session stands, open it again a little later. */
async function onLiveDrop(closed) {
  const live = ctx.live;
  await ctx.refreshStatus();
  if (closed && ctx.session && ctx.live === live) setTimeout(() => ctx.live === live && live.open(), 5000);
}

function signedOut(message) {
  ctx.live?.close();
  ctx.live = null;
  ctx.view?.destroy?.();
  ctx.view = null;
  ctx.shown = null;
  ctx.session = null;
  api.setCsrf(null);
  delete document.body.dataset.signedIn;
  fill($('#nav'));
  fill($('#user'));
  fill($('#status-line'));
  $('#announce').textContent = '';
  ctx.heard = null;
  $('#alarm').hidden = true;
  delete $('#alarm').dataset.drawn;
  $('#exercise').hidden = true;
  const here = location.hash;
  if (here && !here.startsWith('#/login')) sessionStorage.setItem('gsomia.node.back', here);
  if (parseHash(here).view !== 'login') history.replaceState(null, '', '#/login');
  document.title = 'Sign in · gsomia node';
  ctx.view = login.render(ctx, $('#main'), { message, onSignedIn: signedIn });
}

async function signOut() {
  // the node ends the event stream with the session: stop listening first, so that its end is
  // not taken for a session that ended elsewhere
  ctx.live?.close();
  ctx.live = null;
  try {
    await api.del('/api/session');
  } catch {
    // signed out either way: the node ends the session or it had already ended
  }
  sessionStorage.removeItem('gsomia.node.back');
  history.replaceState(null, '', '#/login');
  signedOut('Signed out.');
}

// --- shell -------------------------------------------------------------------------------------

function drawShell() {
  const s = ctx.session;
  fill($('#party'), s.party);
  fill(
    $('#user'),
    h(
      'span',
      { class: 'who' },
      h('span', { class: 'visually-hidden' }, 'Signed in as '),
      h('strong', {}, s.user),
      ' ',
      h('span', { class: 'role' }, s.role),
    ),
    h('button', { type: 'button', id: 'sign-out', onclick: signOut }, 'Sign out'),
  );
  fill(
    $('#nav'),
    h(
      'ul',
      {},
      SECTIONS.filter((sec) => ctx.can(sec.role)).map((sec) =>
        h(
          'li',
          {},
          h(
            'a',
            { href: href(sec.view), dataset: { view: sec.view } },
            sec.label,
            sec.view === 'consents' ? h('span', { class: 'count', id: 'consent-count' }) : null,
          ),
        ),
      ),
    ),
  );
}

/** The alarm (red, on every page, naming both checkpoints), the exercise banner, the status line. */
function drawStatus() {
  const st = ctx.status;
  if (!st) return;
  const alarm = $('#alarm');
  if (st.alarm && unchanged(alarm, st.alarm)) {
    // the same alarm: drawn again, a screen reader would read it out again
  } else if (st.alarm) {
    const a = st.alarm;
    const words = alarmWords(a.kind);
    fill(
      alarm,
      h(
        'div',
        { class: 'alarm-inner' },
        h('h2', {}, words.heading),
        h('p', { class: 'alarm-detail' }, sentence(a.detail), a.at ? ` Detected ${instant(a.at)}.` : ''),
        h('p', { class: 'alarm-advice' }, words.advice),
        h('div', { class: 'checkpoints' }, a.first ? checkpoint(words.first, a.first) : null, checkpoint(words.second, a.second)),
      ),
    );
    alarm.hidden = false;
  } else {
    alarm.hidden = true;
    fill(alarm);
    delete alarm.dataset.drawn;
  }
  const ex = $('#exercise');
  // not a live region: its clock reading changes with every status; the start and the end of
  // an exercise are said once (announceStatus)
  if (st.exercise) {
    fill(
      ex,
      h('strong', {}, 'EXERCISE'),
      ' — the exchange runs an exercise',
      // the exchange's name for it, isolated: its characters cannot turn the node's own words
      st.exercise.whatif ? [' under the what-if ', h('bdi', {}, st.exercise.whatif)] : [],
      `; its clock read ${instant(st.exercise.at)}. Everything made under it is marked EXERCISE.`,
    );
    ex.hidden = false;
  } else ex.hidden = true;
  const x = st.exchange ?? {};
  announceStatus(st);
  const d = st.deliveries ?? {};
  const w = st.witness ?? {};
  fill(
    $('#status-line'),
    h('span', { class: x.reachable ? 'ok' : 'bad', id: 'exchange-state' }, x.reachable ? 'Exchange reachable' : 'Exchange unreachable'),
    x.last_event_at ? h('span', {}, `last event ${instant(x.last_event_at)}`) : null,
    h(
      'span',
      {},
      `${d.verified ?? 0} verified · `,
      h('span', { class: d.quarantined ? 'bad' : '' }, `${d.quarantined ?? 0} quarantined`),
      ` · ${d.pending ?? 0} pending`,
    ),
    st.ledger ? h('span', {}, `ledger ${st.ledger.size} entries${st.ledger.checked_at ? `, checked ${instant(st.ledger.checked_at)}` : ''}`) : null,
    w.cosigned_size !== null && w.cosigned_size !== undefined ? h('span', {}, `witness cosigned ${w.cosigned_size}`) : null,
    statusNotes(st).map((n) => h('span', { id: n.id, class: n.bad ? 'bad' : null, title: n.title || null }, n.text)),
  );
}

/** True when `el` shows `what` already; otherwise it is marked as showing it (to be drawn). */
function unchanged(el, what) {
  const key = JSON.stringify(what);
  if (el.dataset.drawn === key) return true;
  el.dataset.drawn = key;
  return false;
}

/**
 * Say `text` in the polite live region (#announce): a screen reader reads it when the officer
 * pauses, and the focus stays where it is. The same words again are said again.
 */
function announce(text) {
  const el = $('#announce');
  if (el.textContent === text) {
    el.textContent = '';
    setTimeout(() => (el.textContent = text), 100);
  } else el.textContent = text;
}

/** What changed in the status that an officer must hear: the exchange lost or back, keys
 * missing, an exercise begun or ended. */
function announceStatus(st) {
  const now = { reachable: st.exchange?.reachable !== false, missing: Boolean(st.keys?.missing), exercise: Boolean(st.exercise) };
  const was = ctx.heard;
  ctx.heard = now;
  if (!was) return; // the first status after signing in is on the screen, not news
  if (was.reachable !== now.reachable) announce(now.reachable ? 'The exchange is reachable again.' : 'The exchange is unreachable.');
  if (!was.missing && now.missing) announce('Keys missing: this node cannot open new deliveries. See Keys and ledger.');
  if (was.exercise !== now.exercise)
    announce(now.exercise ? 'The exchange runs an exercise: everything made under it is marked EXERCISE.' : 'The exercise has ended.');
}

/** A delivery event, in words: a new report, then what its verification found. */
function announceDelivery(data) {
  if (!data?.delivery_id) return;
  const known = ctx.delivered.has(data.delivery_id);
  ctx.delivered.add(data.delivery_id);
  const what = { verified: 'verified', quarantined: 'quarantined: do not use it', pending: 'being verified' }[data.state] ?? data.state;
  announce(known ? `A delivered report was ${what}.` : `New report delivered, ${what}.`);
}

function showStatusProblem(err) {
  fill($('#status-line'), h('span', { class: 'bad' }, `Status unavailable: ${err.message}`));
}

/** `text` as a sentence: capitalised, ending with a full stop. */
const sentence = (text) => (text ? `${text[0].toUpperCase()}${text.slice(1)}${/[.!?]$/.test(text) ? '' : '.'}` : '');

/** A checkpoint note (C2SP tlog-checkpoint): origin, size, root hash, then signatures. */
function checkpoint(title, note) {
  const text = typeof note === 'string' ? note : JSON.stringify(note, null, 2);
  const lines = (text ?? '').split('\n');
  const size = /^\d+$/.test(lines[1] ?? '') ? lines[1] : null;
  return h(
    'figure',
    { class: 'checkpoint' },
    h('figcaption', {}, title, size ? ` — size ${size}, root ${short(lines[2], 20)}` : ''),
    h('pre', {}, text),
  );
}

// --- router ------------------------------------------------------------------------------------

function route() {
  if (!ctx.session) return;
  if (!ctx.meta) return; // still reading what the views need; signedIn() routes when done
  const r = parseHash(location.hash);
  let entry = VIEWS[r.view];
  if (!entry || !ctx.can(entry.role)) {
    history.replaceState(null, '', '#/inbox');
    entry = VIEWS.inbox;
    r.view = 'inbox';
    r.params = {};
  }
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.view === (entry.parent ?? entry.view)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  // the same view drawn again for a changed setting (an inbox filter): the control that
  // changed keeps the focus, so arrowing through a list of choices does not throw it away
  const same = ctx.shown && ctx.shown.view === r.view && ctx.shown.id === r.id;
  const kept = same && document.activeElement?.id && $('#main').contains(document.activeElement) ? document.activeElement.id : null;
  ctx.shown = { view: r.view, id: r.id };
  ctx.view?.destroy?.();
  const main = $('#main');
  fill(main);
  ctx.view = entry.module.render(ctx, main, r) ?? {};
  document.title = `${ctx.view.title ?? entry.label ?? 'Report'} · ${ctx.session.party} node`;
  const again = kept ? document.getElementById(kept) : null;
  if (again) again.focus();
  // move focus to the new view's heading so a screen reader announces it; not on first load
  else if (ctx.routed) main.querySelector('h1')?.focus({ preventScroll: false });
  ctx.routed = true;
}

/** A status event carries the whole status (the first, on connecting) or the part that
 * changed ({exchange: …} or {ledger: …}): merged into what is shown. */
function mergeStatus(into, part) {
  const out = { ...into };
  for (const [k, v] of Object.entries(part ?? {})) out[k] = v && typeof v === 'object' && !Array.isArray(v) && into?.[k] ? { ...into[k], ...v } : v;
  return out;
}

function onEvent(type, data) {
  if (type === 'status') {
    ctx.status = mergeStatus(ctx.status, data);
    drawStatus();
  } else if (type === 'alarm' || type === 'delivery') {
    // an alarm names its checkpoints, a delivery changes the counts: read the whole status
    ctx.refreshStatus();
    if (type === 'delivery') announceDelivery(data);
  }
  ctx.view?.onEvent?.(type, data);
}

boot();
