// Source tags in the record's text: a bracketed group such as "[V S11]", "[R S35, S37]" or
// "[V S14 para 1]" cites entries of the sources list by id (S and a number); other words in a
// tag ("[R YTN, KBS via §8.3]", "[M]") cite nothing in the list and stay plain text.
// The same reading as gsomia.domain.record.cited_source_ids. Pure, unit-tested under node.

const TAG = /\[[^[\]]*\]/g;
const SOURCE_ID = /\bS[0-9]+\b/g;

/**
 * `text` as pieces: `{text}` for plain text and `{source}` for a source id inside a tag, in
 * order, so a renderer can link each id and keep everything else as it is.
 */
export function splitTags(text) {
  const out = [];
  let last = 0;
  const plain = (s) => {
    if (!s) return;
    if (out.length && 'text' in out.at(-1)) out.at(-1).text += s;
    else out.push({ text: s });
  };
  for (const tag of (text ?? '').matchAll(TAG)) {
    plain(text.slice(last, tag.index));
    let inner = 0;
    for (const id of tag[0].matchAll(SOURCE_ID)) {
      plain(tag[0].slice(inner, id.index));
      out.push({ source: id[0] });
      inner = id.index + id[0].length;
    }
    plain(tag[0].slice(inner));
    last = tag.index + tag[0].length;
  }
  plain((text ?? '').slice(last));
  return out;
}

/** The source ids cited by the tags in `text`, in order, each once. */
export const citedIds = (text) => [...new Set(splitTags(text).flatMap((p) => (p.source ? [p.source] : [])))];
