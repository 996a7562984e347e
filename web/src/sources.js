// The sources list (GET /api/v1/sources): every source the record's tags cite, with its id,
// title, date and links as the scenario records them. `tagged()` renders any text of the
// record with each cited source id linked to its entry here, wherever the page shows a tag.

import { h, fill, $ } from './dom.js';
import { splitTags } from './tags.js';
import { serialize } from './state.js';

/** The element id of a source's entry. */
export const entryId = (id) => `source-${id}`;

/**
 * `text` with each source id inside a tag linked to its entry in the sources view (ids the
 * list does not hold, and tags naming no id, stay plain text). `ctx` is the dashboard.
 */
export function tagged(ctx, text) {
  return splitTags(text).map((piece) => {
    if (!piece.source) return piece.text;
    const known = ctx.sources?.has(piece.source);
    if (!known) return piece.source;
    const entry = ctx.sources.get(piece.source);
    return h(
      'a',
      {
        class: 'source-link',
        href: `?${serialize({ ...ctx.state, view: 'sources' })}#${entryId(piece.source)}`,
        title: entry.title,
        dataset: { source: piece.source },
      },
      piece.source,
    );
  });
}

export class SourcesView {
  constructor(ctx) {
    this.ctx = ctx;
  }

  async render() {
    const ctx = this.ctx;
    const list = [...ctx.sources.values()];
    fill(
      $('#sources-out'),
      list.length
        ? [
            h(
              'p',
              { class: 'note' },
              `${list.length} sources, as the scenario records them. Tags such as [V S11] cite them: V read in the text or an official statement, `,
              'R press or secondary reporting, I inferred, M general knowledge not found in a source. Some links were recorded truncated; the note says so.',
            ),
            h(
              'ol',
              { class: 'sources', id: 'sources-list' },
              list.map((s) =>
                h(
                  'li',
                  { id: entryId(s.id), class: 'source-entry', tabindex: '-1', dataset: { source: s.id } },
                  h('strong', { class: 'source-id' }, s.id),
                  ' ',
                  h('span', { class: 'source-title' }, s.title),
                  s.date ? [' ', h('span', { class: 'source-date' }, `(${s.date})`)] : null,
                  s.links.length
                    ? h(
                        'ul',
                        { class: 'source-links' },
                        s.links.map((url) =>
                          h('li', {}, h('a', { href: url, rel: 'noopener noreferrer', target: '_blank', class: 'external' }, url)),
                        ),
                      )
                    : null,
                  s.note ? h('p', { class: 'source-note' }, s.note) : null,
                ),
              ),
            ),
          ]
        : h('p', { class: 'note' }, 'This scenario lists no sources: its tags cannot be resolved here.'),
    );
    this.reveal();
  }

  /** Scroll to and mark the entry the address names (#source-S11), if any. */
  reveal() {
    const id = decodeURIComponent(location.hash.slice(1));
    for (const el of document.querySelectorAll('.source-entry.current')) el.classList.remove('current');
    if (!id.startsWith('source-')) return;
    const el = document.getElementById(id);
    if (!el) return;
    el.classList.add('current');
    el.scrollIntoView({ block: 'center' });
    el.focus({ preventScroll: true });
  }
}
