// Pieces every view uses: the marking banner, the verification badge, problems, confirmations.

import { h, fill, uid } from './dom.js';
import { bannerParts, caveatText, STATE_LABEL } from './markings.js';

/** The marking banner of an item, each level in its party's language. */
export function banner(item, ownParty, { cls = '' } = {}) {
  const parts = bannerParts(item, ownParty);
  return h(
    'p',
    { class: `banner ${item.exercise ? 'banner-exercise' : ''} ${cls}`.trim(), dataset: { banner: item.banner ?? '' } },
    parts.map((p) => (p.lang || p.cls ? h('span', { lang: p.lang, class: p.cls }, p.text) : p.text)),
  );
}

/** The originator's caveats as a line, or null. */
export function caveats(item) {
  const text = caveatText(item.originator_marking?.caveats);
  return text ? h('p', { class: 'caveats' }, h('span', { class: 'visually-hidden' }, 'Originator’s caveats: '), text) : null;
}

/** The verification state: a quarantined item is never shown like a normal one. */
export function stateBadge(item) {
  const label = STATE_LABEL[item.state] ?? item.state;
  return h(
    'span',
    { class: `badge state state-${item.state}`, dataset: { state: item.state } },
    item.state === 'quarantined' ? ['⚠ ', label.toUpperCase()] : item.state === 'verified' ? ['✓ ', label] : label,
  );
}

/** Why an item is quarantined, in words, with the node's reason code. */
export const reasonText = (item) => (item.reason_text ? `${item.reason_text} (${item.reason})` : (item.reason ?? 'no reason given'));

export const exerciseBadge = () => h('span', { class: 'badge badge-exercise' }, 'EXERCISE');

/** A problem from the node (RFC 9457), as an alert. */
export function problemBox(err, lead = null) {
  const p = err?.problem;
  return h(
    'div',
    { class: 'problem', role: 'alert' },
    lead ? h('strong', {}, lead, ' ') : null,
    p?.title ? h('strong', {}, `${p.title}${err.status ? ` (HTTP ${err.status})` : ''}: `) : null,
    p?.detail || err?.message || String(err),
  );
}

/** Show `content` (or nothing) in a message slot. */
export function say(slot, content) {
  fill(slot, content);
  slot.hidden = !content;
}

/**
 * `message` as the error of `control`: an alert in `slot`, tied to the control (its
 * aria-describedby names the alert, aria-invalid is set) until the control changes; the focus
 * goes to the control, so a screen reader reads its label, the error and any help.
 */
export function fieldError(slot, control, message) {
  if (!control.id) control.id = uid('f');
  const id = `${control.id}-error`;
  say(slot, h('p', { class: 'problem', role: 'alert', id }, message));
  const others = () => (control.getAttribute('aria-describedby') ?? '').split(' ').filter((x) => x && x !== id);
  control.setAttribute('aria-describedby', [id, ...others()].join(' '));
  control.setAttribute('aria-invalid', 'true');
  const clear = () => {
    control.removeEventListener('input', clear);
    control.removeEventListener('change', clear);
    control.removeAttribute('aria-invalid');
    const rest = others();
    if (rest.length) control.setAttribute('aria-describedby', rest.join(' '));
    else control.removeAttribute('aria-describedby');
  };
  control.addEventListener('input', clear);
  control.addEventListener('change', clear);
  control.focus();
}

/** Disable `button` while `promise` runs; returns the promise's value. */
export async function busy(button, promise) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await promise;
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

/**
 * A modal confirmation (<dialog>, so focus is trapped and Escape cancels): resolves true only
 * when the officer presses the confirm button.
 */
export function confirmDialog({ title, body, confirm, danger = false }) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', class: danger ? 'danger' : 'primary' }, confirm);
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const titleId = `dlg-${Date.now()}`;
    const dlg = h(
      'dialog',
      { class: 'dialog', 'aria-labelledby': titleId },
      h('h2', { id: titleId }, title),
      h('div', { class: 'dialog-body' }, body),
      h('div', { class: 'actions' }, cancel, ok),
    );
    const close = (value) => {
      dlg.close();
      dlg.remove();
      resolve(value);
    };
    ok.addEventListener('click', () => close(true));
    cancel.addEventListener('click', () => close(false));
    dlg.addEventListener('cancel', (e) => {
      e.preventDefault();
      close(false);
    });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

/** A card: a section with a heading. */
export function card(title, ...children) {
  const id = `card-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), ...children);
}
