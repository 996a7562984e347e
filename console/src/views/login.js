// Sign-in: user name and password for a session cookie. A wrong pair and an unknown user get
// the same answer; after five failures the node answers 429 with Retry-After, shown here with
// the button held until then.

import * as api from '../api.js';
import { append, h } from '../dom.js';
import { waitText } from '../format.js';
import { fieldError, problemBox, say } from '../widgets.js';

export function render(_ctx, main, { message, onSignedIn }) {
  const user = h('input', {
    id: 'login-user',
    name: 'username',
    type: 'text',
    autocomplete: 'username',
    required: true,
    spellcheck: 'false',
    autocapitalize: 'none',
  });
  const pass = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const out = h('div', { id: 'login-message', 'aria-live': 'polite' });
  let held = 0;
  const form = h(
    'form',
    { class: 'card login', 'aria-labelledby': 'login-title', novalidate: true },
    h('h1', { id: 'login-title', tabindex: '-1' }, 'Sign in'),
    h('p', { class: 'lead' }, 'Party node console. Only authorised liaison officers may sign in; every action is recorded in the node’s audit log.'),
    h('div', { class: 'field' }, h('label', { for: user.id }, 'User name'), user),
    h('div', { class: 'field' }, h('label', { for: pass.id }, 'Password'), pass),
    h('div', { class: 'actions' }, button),
    out,
  );
  if (message) say(out, h('p', { class: 'note', role: 'status' }, message));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!user.value.trim() || !pass.value) {
      fieldError(out, user.value.trim() ? pass : user, 'Enter your user name and password.');
      return;
    }
    button.disabled = true;
    let session;
    try {
      session = await api.post('/api/session', { username: user.value.trim(), password: pass.value });
    } catch (err) {
      pass.value = '';
      if (err.status === 429) {
        const wait = err.retryAfter;
        say(
          out,
          h(
            'div',
            { class: 'problem rate-limited', role: 'alert', id: 'rate-limited' },
            h('strong', {}, 'Too many failed sign-ins. '),
            `Sign-in for this user or from this address is blocked for now; try again ${waitText(wait)}. `,
            'If you did not make these attempts, tell your node administrator.',
          ),
        );
        clearTimeout(held);
        held = setTimeout(() => (button.disabled = false), Math.min(wait ?? 60, 3600) * 1000);
        return;
      }
      button.disabled = false;
      if (err.status === 401) say(out, h('p', { class: 'problem', role: 'alert', id: 'bad-credentials' }, 'The user name or the password is wrong.'));
      else say(out, problemBox(err, 'Sign-in failed.'));
      pass.focus();
      return;
    }
    clearTimeout(held);
    onSignedIn(session);
  });
  append(main, h('div', { class: 'login-page' }, form));
  user.focus();
  return { title: 'Sign in', destroy: () => clearTimeout(held) };
}
