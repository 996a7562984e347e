// The node's users (administrators only): officers, approvers and administrators. Revoking a
// user ends that user's sessions at once.

import * as api from '../api.js';
import { append, h, fill, field, select, table } from '../dom.js';
import { instant } from '../format.js';
import { fieldError, problemBox, say, busy, confirmDialog, card } from '../widgets.js';

const ROLES = [
  ['officer', 'Officer — reads, acknowledges, submits, files incidents'],
  ['approver', 'Approver — also answers consent requests'],
  ['admin', 'Administrator — also users, keys and the audit log'],
];

export function render(ctx, main) {
  const out = h('div', { id: 'users', 'aria-busy': 'true' });
  append(
    main,
    h('div', { class: 'view-head' }, h('h1', { tabindex: '-1' }, 'Users'), h('p', { class: 'lead' }, 'Who may sign in to this node, and as what.')),
    card('Users', out),
    addForm(() => load()),
  );
  const load = async () => {
    let res;
    try {
      res = await api.get('/api/users');
    } catch (err) {
      fill(out, problemBox(err, 'Users could not be read.'));
      return;
    } finally {
      out.removeAttribute('aria-busy');
    }
    fill(
      out,
      table({
        caption: 'Users of the node',
        hideCaption: true,
        id: 'users-table',
        cls: 'stack',
        head: ['User', 'Role', 'Created', 'State', ''],
        rows: res.items.map((u) => {
          const active = u.active ?? !u.revoked_at;
          const revoke = active && u.username !== ctx.session.user ? h('button', { type: 'button', class: 'danger small' }, 'Revoke') : null;
          revoke?.addEventListener('click', async () => {
            const sure = await confirmDialog({
              title: `Revoke ${u.username}?`,
              body: h('p', {}, 'The user’s sessions end at once and the user can no longer sign in.'),
              confirm: 'Revoke',
              danger: true,
            });
            if (!sure) return;
            try {
              await busy(revoke, api.del(`/api/users/${encodeURIComponent(u.username)}`));
            } catch (err) {
              revoke.after(problemBox(err));
              return;
            }
            load();
          });
          return h(
            'tr',
            { dataset: { user: u.username } },
            h('td', {}, h('strong', {}, u.username)),
            h('td', {}, u.role),
            h('td', {}, u.created_at ? instant(u.created_at) : '—'),
            h('td', {}, active ? 'active' : `revoked ${instant(u.revoked_at)}`),
            h('td', {}, revoke),
          );
        }),
      }),
    );
  };
  load();
  return { title: 'Users' };
}

function addForm(reload) {
  const name = h('input', { id: 'user-name', type: 'text', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none' });
  const pass = h('input', { id: 'user-password', type: 'password', autocomplete: 'new-password' });
  const role = select({ id: 'user-role' }, ROLES, { value: 'officer' });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Add the user');
  const out = h('div', { hidden: true });
  const form = h(
    'form',
    {},
    h('div', { class: 'form-grid' }, field('User name', name), field('Initial password', pass), field('Role', role)),
    h('div', { class: 'actions' }, button),
    out,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!name.value.trim() || !pass.value) {
      fieldError(out, name.value.trim() ? pass : name, 'Give a user name and a password.');
      return;
    }
    try {
      await busy(button, api.post('/api/users', { username: name.value.trim(), password: pass.value, role: role.value }));
    } catch (err) {
      say(out, problemBox(err, 'Not added.'));
      return;
    }
    form.reset();
    say(out, h('p', { class: 'ok', role: 'status' }, 'Added.'));
    reload();
  });
  return card('Add a user', form);
}
